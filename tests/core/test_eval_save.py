"""`vae-explorer eval CHECKPOINT --save`: the result kept in the checkpoint's run folder (RUN/eval/*.json) as the run
folder's one writer, read back by the run history's evaluation reader and the runs report. A real tiny run."""

from __future__ import annotations

import csv
import json

import pytest

from core.cli.main import main
from core.runs.evaluation import EVAL_FILE, eval_numbers, read_eval, saved_evals
from core.runs.export import write_runs_csv
from core.runs.history import read_run
from core.runs.report import report_html
from core.training.run_folder import acquire_run_folder

TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--set", "train.log_every=2"]
QUICK_EVAL = ["--quiet", "--iwae-k", "0", "--samples-per-class", "5"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-save") / "run"
    assert main(["train", *TINY, "--out", str(folder), "--quiet"]) == 0
    return folder


def test_save_keeps_the_result_in_the_run_folder_and_reports_read_it(run_dir, capsys):
    ckpt = str(run_dir / "checkpoints" / "best.safetensors")
    assert read_eval(run_dir) is None and saved_evals(run_dir) == []
    assert main(["eval", ckpt, *QUICK_EVAL, "--from", "both", "--json", "--save"]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    files = sorted((run_dir / "eval").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("best-test-") and f"saved {files[0]}" in err
    saved = json.loads(files[0].read_text())
    assert {k: saved[k] for k in printed} == printed                  # the numbers printed are the numbers kept
    assert saved["eval_settings"]["from"] == ["prior", "density"] and saved["eval_settings"]["samples_per_class"] == 5
    assert not (run_dir / ".lock").exists()                           # the writer's lock is let go

    # The same settings again: the same file (same seed, same numbers); another split or source: a file beside it.
    assert main(["eval", ckpt, *QUICK_EVAL, "--from", "both", "--save"]) == 0
    assert "saved" in capsys.readouterr().out
    assert sorted((run_dir / "eval").glob("*.json")) == files
    assert json.loads(files[0].read_text())["fid_like"] == saved["fid_like"]
    assert main(["eval", ckpt, *QUICK_EVAL, "--split", "val", "--save"]) == 0
    capsys.readouterr()
    assert len(list((run_dir / "eval").glob("*.json"))) == 2

    # The run history's reader: the newest test-split evaluation (not the newer val one), its sources named.
    result = read_eval(run_dir)
    assert result is not None and result["split"] == "test" and result["fid_like"] == saved["fid_like"]
    numbers = eval_numbers(result)
    assert numbers["Fréchet score (judge)"] == saved["fid_like"]
    assert numbers["recall, z from density"] == saved["density_recall"]
    html = report_html([run_dir], title="runs")
    assert f"{saved['fid_like']:.4g}" in html and "z from density" in html
    with open(write_runs_csv([read_run(run_dir)], run_dir.parent / "runs.csv"), newline="", encoding="utf-8") as f:
        (row,) = csv.DictReader(f)                                     # `runs --csv` and the Runs tab's export
    assert float(row["eval: Fréchet score (judge)"]) == saved["fid_like"]
    assert float(row["eval: precision, z from density"]) == saved["density_precision"]

    # An experiment's eval.json stays the run's evaluation where there is one.
    (run_dir / EVAL_FILE).write_text(json.dumps({"split": "test", "fid_like": 123.5}))
    try:
        assert read_eval(run_dir)["fid_like"] == 123.5
    finally:
        (run_dir / EVAL_FILE).unlink()


def test_save_outside_a_run_folder_is_one_line_and_writes_nothing(tmp_path, capsys, run_dir):
    loose = tmp_path / "model.safetensors"
    loose.write_bytes((run_dir / "checkpoints" / "best.safetensors").read_bytes())
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["eval", str(loose), *QUICK_EVAL, "--save"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "not in one" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_save_bundled_model_is_refused(capsys):
    from core.paths import bundled_model

    path = bundled_model("vae")
    assert path is not None
    assert main(["eval", str(path), *QUICK_EVAL, "--save"]) == 2
    err = capsys.readouterr().err
    assert "--save keeps the evaluation in the checkpoint's run folder" in err and len(err.strip().splitlines()) == 1
    assert not (path.parent / "eval").exists()


def test_save_while_another_writer_holds_the_run_is_refused(run_dir, capsys):
    ckpt = str(run_dir / "checkpoints" / "best.safetensors")
    before = sorted(p.name for p in (run_dir / "eval").glob("*")) if (run_dir / "eval").exists() else []
    with acquire_run_folder(run_dir, resume=True, command="vae-explorer train (test)"):
        assert main(["eval", ckpt, *QUICK_EVAL, "--split", "train", "--save"]) == 2
    err = capsys.readouterr().err
    assert "is being written by" in err and "vae-explorer train (test)" in err and len(err.strip().splitlines()) == 1
    after = sorted(p.name for p in (run_dir / "eval").glob("*")) if (run_dir / "eval").exists() else []
    assert after == before and not (run_dir / ".lock").exists()
