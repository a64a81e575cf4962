"""Reading run history survives any folder: wrong-typed, out-of-range and non-finite fields, FIFOs, devices, links
out of the folder, huge files and lines. Each damaged folder says why; every other run is still listed, by
`find_runs`, `vae-explorer runs` and `vae-explorer report`. Outputs never overwrite a run's records, CSV cells are
neutralised, names printed to the terminal are made printable."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import threading
from pathlib import Path

import pytest

from core import cli
from core.runs.history import find_runs, load_series, read_run

TINY = ["--epochs", "1", "--per-class", "10", "--batch-size", "32", "--set", "model.width=8", "--set",
        "model.latent_dim=4", "--set", "model.stages=2", "--set", "train.log_every=2", "--quiet"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("history") / "good"
    assert cli.main(["train", *TINY, "--out", str(run)]) == 0
    return run


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def runs_folder(good_run: Path, tmp_path: Path) -> Path:
    """A runs folder holding a copy of the good run (named 'good') and a copy to damage ('damaged')."""
    root = tmp_path / "runs"
    shutil.copytree(good_run, root / "good")
    shutil.copytree(good_run, root / "damaged")
    return root


def write_records(run: Path, recs: list[dict]) -> None:
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


# The cases and their variants: (record type, field, value, what the reason names).
DAMAGE = [
    ("start", "config", "abc", "$.config"), ("end", "best_val", [1], "$.best_val"),
    ("epoch", "kl_per_dim", {"a": 1}, "$.kl_per_dim"), ("epoch", "epoch", 1e308, "$.epoch"),
    ("epoch", "epoch", -3, "$.epoch"), ("epoch", "epoch", 2**70, "$.epoch"), ("epoch", "val", {"loss": "x"}, "$.val"),
    ("epoch", "val", [1, 2], "$.val"), ("epoch", "is_best", "yes", "$.is_best"), ("epoch", "elapsed_s", None,
                                                                                  "$.elapsed_s"),
    ("end", "best_val", float("inf"), "$.best_val"), ("end", "best_val", float("nan"), "$.best_val"),
    ("end", "status", 7, "$.status"), ("end", "step", "12", "$.step"), ("end", "step", True, "$.step"),
    ("checkpoint", "path", ["x"], "$.path"), ("checkpoint", "step", 1.5, "$.step"),
    ("start", "meta", None, "$.meta"), ("start", "total_steps", -1, "$.total_steps"),
    ("log", "message", {"a": 1}, "$.message"), ("log", "step", 1e300, "$.step"),
]


@pytest.mark.parametrize(("kind", "name", "value", "where"), DAMAGE, ids=[f"{k}.{n}={v!r}" for k, n, v, _ in DAMAGE])
def test_a_wrong_field_is_said_with_its_line_and_every_run_is_still_listed(good_run, tmp_path, capsys, kind, name,
                                                                           value, where):
    root = runs_folder(good_run, tmp_path)
    recs = records(root / "damaged")
    recs.insert(1, {"type": "log", "level": "info", "message": "hello", "step": 0, "time": recs[0]["time"]})
    line = next(i for i, r in enumerate(recs) if r["type"] == kind)
    recs[line][name] = value
    write_records(root / "damaged", recs)
    s = read_run(root / "damaged")
    assert f"line {line + 1}: {kind} record:" in s.reason and where in s.reason
    assert s.damaged == 1 and s.status != "unreadable"
    assert {r.name for r in find_runs([root])} == {"good", "damaged"}
    load_series(root / "damaged")
    assert cli.main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "damaged" in out and "1 damaged line(s) of metrics.jsonl skipped" in out
    assert cli.main(["report", str(root / "good"), str(root / "damaged"), "--out", str(tmp_path / "r.html")]) == 0


def test_times_out_of_any_calendar_are_no_time(good_run, tmp_path, capsys):
    root = runs_folder(good_run, tmp_path)
    recs = records(root / "damaged")
    for r, t in zip(recs, [1e300, -5, float("nan"), "noon", True] * len(recs), strict=False):
        r["time"] = t
    write_records(root / "damaged", recs)
    s = read_run(root / "damaged")
    assert s.status == "completed" and s.started is not None and s.started < 1e11
    assert cli.main(["runs", str(root)]) == 0 and "damaged" in capsys.readouterr().out


def test_only_damaged_records_make_the_folder_unreadable_with_the_reason(good_run, tmp_path):
    root = runs_folder(good_run, tmp_path)
    write_records(root / "damaged", [{"type": "epoch", "epoch": "one"}, {"type": "end", "status": None}])
    s = read_run(root / "damaged")
    assert s.status == "unreadable" and "no readable record" in s.reason and "line 1: epoch record" in s.reason
    assert read_run(root / "good").status == "completed"


def test_a_fifo_as_metrics_or_config_is_refused_without_hanging(good_run, tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    root = runs_folder(good_run, tmp_path)
    (root / "damaged" / "metrics.jsonl").unlink()
    os.mkfifo(root / "damaged" / "metrics.jsonl")
    result = {}
    reader = threading.Thread(target=lambda: result.update(runs=find_runs([root]),
                                                           series=load_series(root / "damaged")), daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading a FIFO hung"
    by_name = {r.name: r for r in result["runs"]}
    assert by_name["damaged"].status == "unreadable" and "not a regular file" in by_name["damaged"].reason
    assert by_name["good"].status == "completed" and result["series"] == {}
    (root / "good" / "config.json").unlink()
    os.mkfifo(root / "good" / "config.json")
    s = read_run(root / "good")                       # settings from the start record instead
    assert s.status == "completed" and "config.json is not a regular file" in s.reason


def test_links_to_a_device_or_out_of_the_folder_are_not_followed(good_run, tmp_path):
    root = runs_folder(good_run, tmp_path)
    (root / "damaged" / "metrics.jsonl").unlink()
    (root / "damaged" / "metrics.jsonl").symlink_to("/dev/zero")
    s = read_run(root / "damaged")
    assert s.status == "unreadable" and "outside" in s.reason
    outside = tmp_path / "elsewhere.jsonl"
    shutil.copy(root / "good" / "metrics.jsonl", outside)
    (root / "damaged" / "metrics.jsonl").unlink()
    (root / "damaged" / "metrics.jsonl").symlink_to(outside)
    assert "link to a file outside" in read_run(root / "damaged").reason
    shutil.copy(outside, root / "damaged" / "records.jsonl")
    (root / "damaged" / "metrics.jsonl").unlink()
    (root / "damaged" / "metrics.jsonl").symlink_to(root / "damaged" / "records.jsonl")   # inside the folder: read
    assert read_run(root / "damaged").status == "completed"


def test_a_huge_sparse_metrics_file_is_refused_by_its_size_not_read(good_run, tmp_path):
    root = runs_folder(good_run, tmp_path)
    with open(root / "damaged" / "metrics.jsonl", "r+b") as f:
        f.truncate(10 * 10**9)          # 10 GB of holes: nothing on disk, and never read
    s = read_run(root / "damaged")
    assert s.status == "unreadable" and "10.0 GB" in s.reason and s.kind == "vae"
    assert load_series(root / "damaged") == {}
    (root / "damaged" / "samples").mkdir(exist_ok=True)
    for png in (root / "damaged" / "samples").iterdir():
        with open(png, "r+b") as f:
            f.truncate(10 * 10**9)
    assert cli.main(["report", str(root / "damaged"), str(root / "good"), "--out", str(tmp_path / "r.html")]) == 0
    assert "the sample grid is not shown" in (tmp_path / "r.html").read_text()


def test_an_overlong_line_is_skipped_and_the_rest_read(good_run, tmp_path):
    root = runs_folder(good_run, tmp_path)
    lines = (root / "damaged" / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    long_line = b'{"type": "log", "level": "info", "message": "' + b"x" * (3 << 20) + b'"}\n'
    (root / "damaged" / "metrics.jsonl").write_bytes(b"".join(lines[:2] + [long_line] + lines[2:]))
    s = read_run(root / "damaged")
    good = read_run(root / "good")
    assert s.status == "completed" and "line 3: longer than 1.0 MB" in s.reason
    assert (s.step, s.best_val, s.headline) == (good.step, good.best_val, good.headline)
    assert load_series(root / "damaged")["loss"].value.tolist() == load_series(root / "good")["loss"].value.tolist()


# ------------------------------------------------------------------------------------------------ outputs
@pytest.mark.parametrize("argv", [
    ["report", "{run}", "--out", "{run}/metrics.jsonl"],
    ["report", "{run}", "--out", "{run}/checkpoints/r.html"],
    ["report", "{run}", "--out", "{run}/samples/r.html"],
    ["report", "{run}", "--out", "{tmp}/report.txt"],
    ["report", "{run}", "--out", "{tmp}/" + "r" * 300 + ".html"],
    ["runs", "{run}", "--csv", "{run}/metrics.jsonl"],
    ["runs", "{run}", "--csv", "{run}/config.json"],
    ["runs", "{run}", "--csv", "{run}/samples/x.csv"],
    ["runs", "{run}", "--csv", "{tmp}/" + "é" * 200 + ".csv"],
    ["runs", "{run}", "--csv", "{tmp}/no/such/folder/x.csv"],
    ["runs", "{run}", "--csv", "{tmp}"],
    ["train", "--out", "{tmp}/" + "n" * 300],
    ["sample", "{run}/checkpoints/last.safetensors", "--out", "{tmp}/" + "n" * 300 + ".png"],
    ["experiment", "beta-sweep", "--out", "{tmp}/" + "n" * 300],
])
def test_outputs_never_overwrite_a_runs_records_and_bad_names_are_one_line(good_run, tmp_path, capsys, argv):
    root = runs_folder(good_run, tmp_path)
    run = root / "good"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code = cli.main([a.format(run=run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_a_report_may_still_go_beside_the_records(good_run, tmp_path):
    root = runs_folder(good_run, tmp_path)
    assert cli.main(["report", str(root / "good"), "--out", str(root / "good" / "report.html")]) == 0


def test_csv_cells_are_neutralised_and_terminal_names_made_printable(good_run, tmp_path, capsys):
    root = tmp_path / "runs"
    evil = "=HYPERLINK(\"x\")\x1b[2J\x1b]0;pwned\x07"
    shutil.copytree(good_run, root / evil)
    shutil.copytree(good_run, root / "-2+3")
    out = tmp_path / "runs.csv"
    assert cli.main(["runs", str(root), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\\x1b[2J" in printed
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = {r["name"] for r in rows}
    assert names == {"'" + evil, "'-2+3"}
    for r in rows:   # numbers stay numbers, negative ones too
        assert r["best_val"].startswith("-") and math.isfinite(float(r["best_val"]))


# ------------------------------------------------------------------------------------------------ following
def test_following_skips_an_overlong_line_and_says_so(good_run, tmp_path):
    from core.training.events import LogMessage, RunEnded
    from core.training.run_folder import follow_run

    root = runs_folder(good_run, tmp_path)
    lines = (root / "damaged" / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    huge = b'{"type": "log", "level": "info", "message": "' + b"x" * (50 << 20) + b'"}\n'   # the 50 MB line
    wrong = json.dumps({"type": "end", "status": "completed", "reason": "x", "step": [1], "epoch": 1}).encode() + b"\n"
    (root / "damaged" / "metrics.jsonl").write_bytes(b"".join([lines[0], huge, wrong, *lines[1:]]))
    events = list(follow_run(root / "damaged", poll_s=0.01, models=False))
    said = [e.message for e in events if isinstance(e, LogMessage)]
    assert said[:2] == ["skipped line 2 of metrics.jsonl: longer than 1.0 MB",
                        "skipped line 3 of metrics.jsonl: end record: Expected `int`, got `array` - at `$.step`"]
    assert isinstance(events[-1], RunEnded) and events[-1].status == "completed"
    assert len([e for e in events if not isinstance(e, LogMessage)]) == len(lines)


def test_following_a_fifo_says_so_and_ends(tmp_path):
    from core.training.events import LogMessage
    from core.training.run_folder import follow_run

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "metrics.jsonl")
    result = []
    reader = threading.Thread(target=lambda: result.extend(follow_run(tmp_path, poll_s=0.01, models=False)),
                              daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "following a FIFO hung"
    assert len(result) == 1 and isinstance(result[0], LogMessage) and result[0].level == "error"
    assert "not a regular file" in result[0].message
