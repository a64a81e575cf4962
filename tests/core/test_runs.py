"""Runs as a history: summaries of run folders written by the CLI (finished, still being written by another process,
stopped, damaged, not runs at all), their curves, the settings that differ, CSV exports, the HTML report, the
`runs` and `report` commands, and the optional TensorBoard sink."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.errors import UserError
from core.runs.export import write_runs_csv, write_series_csv
from core.runs.history import config_diff, find_runs, load_series, read_run
from core.runs.report import write_report
from core.training import tensorboard
from core.training.events import EpochSummary, StepMetrics, from_record

# A model that trains in a couple of seconds on the CPU (as in test_cli.py).
TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--set", "train.log_every=2"]


class FakeWriter:
    """Stands in for torch's SummaryWriter: records what it is asked to write."""

    instances: list[FakeWriter] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.scalars: list[tuple[str, float, int]] = []
        self.texts: list[str] = []
        self.closed = False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.texts.append(tag)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs that differ only in beta, trained through the CLI; the first also with --tensorboard (into a
    fake SummaryWriter: the tensorboard package is an optional extra)."""
    root = tmp_path_factory.mktemp("runs")
    FakeWriter.instances.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tensorboard, "summary_writer_class", lambda: FakeWriter)
        assert cli.main(["train", *TINY, "--set", "model.beta=0.5", "--out", str(root / "beta-0.5"), "--quiet",
                         "--tensorboard"]) == 0
    assert cli.main(["train", *TINY, "--set", "model.beta=2", "--out", str(root / "beta-2"), "--quiet"]) == 0
    return root


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def copy_run(runs: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(runs / "beta-0.5", tmp_path / name))


# ------------------------------------------------------------------------------------------------ summaries
def test_a_finished_run_is_summarised_from_its_records(runs):
    s = read_run(runs / "beta-0.5")
    recs = records(runs / "beta-0.5")
    end, last_epoch = recs[-1], [r for r in recs if r["type"] == "epoch"][-1]
    assert s.status == "completed" and s.name == "beta-0.5"
    assert (s.kind, s.dataset, s.subset) == ("vae", "digits", "20 per class")
    assert (s.epochs_done, s.epochs_total, s.step) == (1, 1, end["step"])
    assert s.best_val == end["best_val"] == last_epoch["val"]["elbo"]
    assert s.headline == last_epoch["val"] and "kl" in s.headline
    assert s.started == recs[0]["time"] and s.updated == end["time"]
    assert s.config["model"]["beta"] == 0.5 and s.config["data"]["per_class"] == 20
    assert "finished" in s.reason


def test_subset_names_classes_and_images_per_class(runs, tmp_path):
    run = copy_run(runs, tmp_path, "subset")
    config = json.loads((run / "config.json").read_text())
    config["data"]["classes"] = ["3", "7"]
    (run / "config.json").write_text(json.dumps(config))
    assert read_run(run).subset == "classes 3,7; 20 per class"
    config["data"].update(classes=[], per_class=0)
    (run / "config.json").write_text(json.dumps(config))
    assert read_run(run).subset == ""


def test_a_run_without_an_end_record_is_running_while_written_then_unfinished(runs, tmp_path):
    run = copy_run(runs, tmp_path, "cut")
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (run / "metrics.jsonl").write_bytes(b"".join(lines[:-1]) + b'{"type": "step", "st')   # half-written line
    s = read_run(run)
    assert s.status == "running" and s.reason == ""
    old = time.time() - 3600
    for name in ("metrics.jsonl", "config.json"):
        os.utime(run / name, (old, old))
    s = read_run(run)
    assert s.status == "unfinished" and "never finished" in s.reason
    assert read_run(run, running_within_s=7200).status == "running"


def test_a_run_written_by_another_process_is_running_then_stopped(tmp_path):
    run = tmp_path / "live"
    env = dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", *TINY, "--epochs", "500", "--out", str(run),
                             "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        metrics = run / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (metrics.is_file() and '"type": "step"' in metrics.read_text()):
            time.sleep(0.1)
        s = read_run(run)
        assert s.status == "running", (s, proc.poll())
        assert s.kind == "vae" and s.epochs_total == 500 and s.step > 0
        assert [r.path for r in find_runs([tmp_path])] == [run]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 143, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    s = read_run(run)
    assert s.status == "stopped" and s.reason == "stopped by the user" and s.step > 0


def test_garbage_lines_are_skipped_and_said(runs, tmp_path):
    run = copy_run(runs, tmp_path, "damaged")
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    wrong_type = json.dumps({"type": "epoch", "epoch": "one", "step": 3, "train": {}, "val": {}}).encode() + b"\n"
    damaged = lines[:2] + [b"\x00\xff\xfe garbage \x89PNG\n", wrong_type] + lines[2:] + [b'{"type": "log", "le']
    (run / "metrics.jsonl").write_bytes(b"".join(damaged))
    s = read_run(run)
    good = read_run(runs / "beta-0.5")
    assert s.status == "completed"
    assert "skipped 2 unreadable line(s)" in s.reason
    assert (s.step, s.best_val, s.headline, s.epochs_done) == (good.step, good.best_val, good.headline, 1)
    assert load_series(run)["loss"].value.tolist() == load_series(runs / "beta-0.5")["loss"].value.tolist()


def test_a_metrics_file_of_garbage_is_unreadable(runs, tmp_path):
    run = copy_run(runs, tmp_path, "garbage")
    (run / "metrics.jsonl").write_bytes(bytes(range(256)) * 8 + b"\n" + b"\xff" * 100 + b"\n")
    s = read_run(run)
    assert s.status == "unreadable" and "no readable record" in s.reason
    assert s.kind == "vae" and s.config is not None      # what config.json says is still shown
    assert load_series(run) == {}


def test_a_missing_config_is_taken_from_the_start_record_or_makes_the_run_unreadable(runs, tmp_path):
    run = copy_run(runs, tmp_path, "noconfig")
    (run / "config.json").unlink()
    s = read_run(run)
    assert s.status == "completed" and s.config == read_run(runs / "beta-0.5").config
    assert "no config.json" in s.reason
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[1:]))        # the start record is gone too
    s = read_run(run)
    assert s.status == "unreadable" and "no config.json" in s.reason
    (run / "config.json").write_bytes(b"\x00\x01 not json")
    s = read_run(run)
    assert s.status == "unreadable" and "config.json is not JSON" in s.reason


def test_folders_that_are_not_runs_are_unreadable_with_a_reason(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("hello")
    (tmp_path / "file.txt").write_text("hello")
    assert read_run(tmp_path / "notes").reason == "not a run folder (no metrics.jsonl or config.json)"
    assert read_run(tmp_path / "file.txt").reason == "not a folder"
    assert read_run(tmp_path / "nothing").reason == "no such folder"
    for path in ("notes", "file.txt", "nothing"):
        assert read_run(tmp_path / path).status == "unreadable"


def test_find_runs_lists_the_run_folders_of_each_folder_newest_first(runs, tmp_path):
    copy_run(runs, tmp_path, "broken")
    (tmp_path / "broken" / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    (tmp_path / "notes").mkdir()
    found = find_runs([runs, tmp_path, runs / "beta-2", tmp_path / "no-such-folder"])
    assert [r.name for r in found] == ["broken", "beta-2", "beta-0.5"]   # beta-2 once; notes is not a run
    assert [r.status for r in found] == ["unreadable", "completed", "completed"]
    assert find_runs([runs / "beta-2"])[0].name == "beta-2"


def test_listing_many_runs_is_quick(runs, tmp_path):
    for i in range(50):
        shutil.copytree(runs / "beta-2", tmp_path / f"run-{i:03d}")
    start = time.perf_counter()
    found = find_runs([tmp_path])
    assert len(found) == 50 and time.perf_counter() - start < 2.0


# ------------------------------------------------------------------------------------------------ curves, settings
def test_series_values_equal_the_records(runs):
    recs = [from_record(r) for r in records(runs / "beta-2")]
    series = load_series(runs / "beta-2")
    steps = [e for e in recs if isinstance(e, StepMetrics)]
    epochs = [e for e in recs if isinstance(e, EpochSummary)]
    for name in ("loss", "recon", "kl"):
        assert series[name].value.tolist() == [float(e.metrics[name]) for e in steps]
    assert series["lr"].value.tolist() == [e.lr for e in steps]
    assert series["loss"].step.tolist() == [e.step for e in steps]
    assert series["loss"].epoch.tolist() == [e.epoch for e in steps]
    assert series["loss"].time.tolist() == [e.time for e in steps]
    assert series["val elbo"].value.tolist() == [e.val["elbo"] for e in epochs]
    assert series["val elbo"].step.tolist() == [e.step for e in epochs]
    assert series["val loss"].step.dtype == np.int64 and series["val loss"].value.dtype == np.float64


def test_a_resumed_run_replaces_the_redone_points(runs, tmp_path):
    run = copy_run(runs, tmp_path, "resumed")
    recs = records(run)
    start = dict(recs[0], start_step=2, time=recs[-1]["time"] + 1)
    redo = [dict(r, metrics={**r["metrics"], "loss": 1.0}) for r in recs if r["type"] == "step" and r["step"] > 2]
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in [start, *redo])
    loss = load_series(run)["loss"]
    assert loss.step.tolist() == sorted(loss.step.tolist())
    assert loss.value.tolist()[1:] == [1.0] * len(redo)
    assert read_run(run).status in ("running", "unfinished")   # the old end record no longer ends it


def test_config_diff_names_only_the_settings_that_differ(runs, tmp_path):
    a, b = read_run(runs / "beta-0.5"), read_run(runs / "beta-2")
    assert config_diff([a, b]) == {"model.beta": [0.5, 2.0]}
    assert config_diff([b, a]) == {"model.beta": [2.0, 0.5]}
    assert config_diff([a, a]) == {}
    broken = read_run(tmp_path)
    assert config_diff([a, broken, b]) == {"model.beta": [0.5, None, 2.0]}


# ------------------------------------------------------------------------------------------------ exports
def test_runs_csv_round_trips(runs, tmp_path):
    summaries = find_runs([runs]) + [read_run(tmp_path / "missing")]
    path = write_runs_csv(summaries, tmp_path / "runs.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [s.name for s in summaries]
    assert [r["status"] for r in rows] == [s.status for s in summaries]
    for row, s in zip(rows[:2], summaries[:2], strict=True):
        assert float(row["best_val"]) == s.best_val
        assert float(row["val elbo"]) == s.headline["elbo"]
        assert float(row["model.beta"]) == s.config["model"]["beta"]
        assert (row["kind"], row["dataset"], row["subset"]) == ("vae", "digits", "20 per class")
        assert int(row["epochs_done"]) == s.epochs_done and float(row["started"]) == s.started
    assert rows[2]["best_val"] == "" and rows[2]["reason"] == "no such folder"


def test_series_csv_round_trips(runs, tmp_path):
    paths = [runs / "beta-0.5", runs / "beta-2"]
    path = write_series_csv(paths, tmp_path / "series.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["run", "series", "step", "epoch", "time", "value"]
    for run in paths:
        for name, s in load_series(run).items():
            mine = [r for r in rows if r["run"] == run.name and r["series"] == name]
            assert [int(r["step"]) for r in mine] == s.step.tolist()
            assert [int(r["epoch"]) for r in mine] == s.epoch.tolist()
            assert [float(r["time"]) for r in mine] == s.time.tolist()
            assert [float(r["value"]) for r in mine] == s.value.tolist()


# ------------------------------------------------------------------------------------------------ the report
class _Html(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input", "rect", "line", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()


def test_the_report_is_one_self_contained_html_file(runs, tmp_path):
    paths = [runs / "beta-0.5", runs / "beta-2"]
    out = write_report(paths, tmp_path / "report.html", title="beta sweep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]   # one file, nothing beside it
    text = out.read_text(encoding="utf-8")
    parser = _Html()
    parser.feed(text)
    parser.close()
    assert parser.stack == []                                               # every element is closed
    assert "http" not in text and "src=\"/" not in text and "<script" not in text
    tags = [t for t, _ in parser.tags]
    plotted = {n for p in paths for n in load_series(p)} - {"beta", "val beta"}
    assert tags.count("svg") == len(plotted) >= 5
    # One curve per run in each plot (a curve of one point, e.g. one epoch's validation, is a dot).
    assert tags.count("polyline") + tags.count("circle") == 2 * len(plotted)
    images = [a for t, a in parser.tags if t == "img"]
    assert len(images) == 2
    for attrs, run in zip(images, paths, strict=True):
        assert attrs["src"].startswith("data:image/png;base64,")
        picture = Image.open(io.BytesIO(base64.b64decode(attrs["src"].split(",", 1)[1])))
        newest = sorted((run / "samples").glob("*.png"))[-1]
        assert picture.size == Image.open(newest).size
    assert "beta sweep" in text and "beta=0.5" in text and "beta=2" in text   # the legend names the setting
    assert tags.count("table") == 1 + 1 + 2                                 # metrics, the diff, each config
    assert re.search(r"<td>model\.beta</td><td>0\.5</td><td>2</td>", text)


def test_a_report_lists_an_unreadable_run_with_its_reason(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    out = write_report([runs / "beta-2", tmp_path / "empty"], tmp_path / "r.html")
    text = out.read_text(encoding="utf-8")
    assert "not a run folder" in text and text.count("<svg") >= 5


# ------------------------------------------------------------------------------------------------ the commands
def test_runs_command_prints_a_table_and_writes_a_csv(runs, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    code = cli.main(["runs", str(runs), str(tmp_path / "notes"), "--csv", str(tmp_path / "runs.csv")])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["run", "status", "kind"]
    assert any(line.startswith("beta-2 ") and "completed" in line for line in lines)
    assert any(line.startswith("notes ") and "unreadable" in line and "not a run folder" in line for line in lines)
    with open(tmp_path / "runs.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)] == ["beta-2", "beta-0.5", "notes"]


@pytest.mark.parametrize("argv", [
    ["runs", "{tmp}/no-such-folder"],
    ["runs", "{tmp}/file.txt"],
    ["runs", "{runs}", "--csv", "{tmp}/no/such/folder/runs.csv"],
    ["report"],
    ["report", "{tmp}/no-such-run"],
    ["report", "{runs}/beta-2", "--out", "{tmp}/no/such/folder/r.html"],
    ["report", "{runs}/beta-2", "--out", "{tmp}"],
])
def test_bad_paths_give_one_line_and_exit_2(runs, tmp_path, capsys, argv):
    (tmp_path / "file.txt").write_text("x")
    code = cli.main([a.format(tmp=tmp_path, runs=runs) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vae-explorer: error: ") and "Traceback" not in err + out


def test_report_command_writes_the_report(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out_file = tmp_path / "report.html"
    code = cli.main(["report", str(runs / "beta-0.5"), str(runs / "beta-2"), str(tmp_path / "empty"), "--out",
                     str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"wrote {out_file}" in out and "warning" in err and "not a run folder" in err
    assert out_file.read_text(encoding="utf-8").count("data:image/png;base64,") == 2


# ------------------------------------------------------------------------------------------------ TensorBoard
def test_train_with_tensorboard_hands_every_event_to_the_sink(runs):
    writer = FakeWriter.instances[0]
    assert Path(writer.log_dir) == runs / "beta-0.5" / "tensorboard" and writer.closed
    recs = records(runs / "beta-0.5")
    steps = [r for r in recs if r["type"] == "step"]
    epochs = [r for r in recs if r["type"] == "epoch"]
    loss = [(value, step) for tag, value, step in writer.scalars if tag == "train/loss"]
    assert loss == [(r["metrics"]["loss"], r["step"]) for r in steps]
    assert [(v, s) for t, v, s in writer.scalars if t == "val/elbo"] == [(r["val"]["elbo"], r["step"]) for r in epochs]
    assert {"train/lr", "train/kl", "epoch/loss", "val/kl"} <= {t for t, _, _ in writer.scalars}
    assert writer.texts == ["config"]
    assert (runs / "beta-0.5" / "metrics.jsonl").is_file()     # metrics.jsonl stays the record


def test_the_sink_stops_writing_when_the_disk_fails(runs):
    class FullDisk(FakeWriter):
        def add_scalar(self, tag, value, step):
            raise OSError(28, "No space left on device")

    sink = tensorboard.TensorBoardSink("tb", writer_class=FullDisk)
    for record in records(runs / "beta-2"):
        sink(from_record(record))
    assert sink.writer is None and "No space left" in sink.failed


def test_a_missing_tensorboard_package_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # importing it raises ImportError
    with pytest.raises(UserError, match=re.escape("pip install 'vae-explorer[tensorboard]'")):
        tensorboard.TensorBoardSink(tmp_path / "tb")
    code = cli.main(["train", *TINY, "--out", str(tmp_path / "run"), "--tensorboard", "--quiet"])
    _, err = capsys.readouterr()
    assert code == 2 and "install tensorboard (pip install 'vae-explorer[tensorboard]')" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()    # said before any training
