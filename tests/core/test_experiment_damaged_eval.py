"""An experiment whose run has a damaged eval.json: the experiment report's own table reads "damaged" (not "not
evaluated") with the run history's one line under it, and the runs CSV (`runs OUT --csv`, the Runs tab's export of an
experiment's folder) carries that line in `eval_problem`, and `experiment --from ...` prints it under its table per
source of z; a valid run shows its numbers and no such line. The run folders are written as the Trainer and the runner
leave them (tests/conftest.py's finished_run), without training."""

from __future__ import annotations

import csv
import json

import pytest

from core.cli.main import main
from core.experiments.report import experiment_report_html
from core.experiments.spec import beta_sweep, reference_study
from core.runs.evaluation import read_run_eval
from core.runs.export import RUN_COLUMNS, write_runs_csv
from core.runs.history import find_runs

VALID = json.dumps({"split": "test", "kl": 12.0, "recon": 80.0, "elbo": -92.0, "active_units": 3, "latent_dim": 4,
                    "fid_like": 12.5, "precision": 0.875, "recall": 0.25})
CUT_SHORT = "eval.json is not valid JSON (cut short or damaged)"


def section(text: str, heading: str) -> str:
    """The report's text from `heading` to the next heading."""
    start = text.index(heading)
    return text[start:text.index("<h2>", start + len(heading))]


def sweep_folder(finished_run, folder, damaged: str | None = VALID[:30]):
    """A two-run beta sweep's folder: beta-0.5 evaluated, beta-2 with `damaged` as its eval.json."""
    spec = beta_sweep("digits", "quick", betas=(0.5, 2.0))
    finished_run(folder / "beta-0.5", VALID)
    finished_run(folder / "beta-2", VALID if damaged is None else damaged)
    return spec


def test_the_beta_sweep_table_says_damaged_and_why(finished_run, tmp_path):
    spec = sweep_folder(finished_run, tmp_path)
    assert read_run_eval(tmp_path / "beta-2").problem == CUT_SHORT
    table = section(experiment_report_html(spec, tmp_path), "<h2>Rate and distortion per β</h2>")
    assert "<td>beta-2</td><td>2</td><td>damaged</td>" in table and "not evaluated" not in table
    assert f'<p class="unreadable">beta-2: {CUT_SHORT}</p>' in table         # under the experiment's table
    assert "<td>beta-0.5</td><td>0.5</td><td>12</td><td>80</td><td>-92</td>" in table   # the valid run's numbers
    assert "beta-0.5:" not in table                                            # no line for the valid run


def test_the_reference_study_notes_say_damaged_and_why(finished_run, tmp_path):
    spec = reference_study("digits", "quick")
    damaged, valid = spec.runs[0].name, spec.runs[1].name
    finished_run(tmp_path / damaged, "[1, 2]")
    finished_run(tmp_path / valid, VALID)
    problem = "eval.json holds a JSON list, not an evaluation"
    table = section(experiment_report_html(spec, tmp_path), "<h2>Our measurements</h2>")
    assert f"<td>{damaged}</td>" in table and "<td>damaged</td></tr>" in table
    assert f'<p class="unreadable">{damaged}: {problem}</p>' in table
    assert f"{valid}:" not in table and table.count('class="unreadable"') == 1
    assert table.count("<td>not evaluated</td>") == len(spec.runs) - 2      # the runs without a folder


def test_valid_evaluations_have_no_damaged_mark(finished_run, tmp_path):
    spec = sweep_folder(finished_run, tmp_path, damaged=None)
    text = experiment_report_html(spec, tmp_path)
    assert "damaged" not in section(text, "<h2>Rate and distortion per β</h2>")
    assert 'class="unreadable"' not in text


def test_the_runs_csv_of_an_experiment_carries_the_problem(finished_run, tmp_path):
    sweep_folder(finished_run, tmp_path / "sweep")
    out = write_runs_csv(find_runs([tmp_path / "sweep"]), tmp_path / "runs.csv")
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = {row["name"]: row for row in reader}
        header = reader.fieldnames
    assert header[:len(RUN_COLUMNS)] == list(RUN_COLUMNS) and "eval_problem" in RUN_COLUMNS
    assert RUN_COLUMNS[:18] == ("name", "status", "kind", "dataset", "subset", "epochs_done", "epochs_total", "step",
                                "best_val", "started", "updated", "started_utc", "updated_utc", "path", "reason",
                                "damaged", "tags", "note")   # the columns before it, unchanged
    assert rows["beta-2"]["eval_problem"] == CUT_SHORT and rows["beta-2"]["eval: precision"] == ""
    assert rows["beta-0.5"]["eval_problem"] == "" and float(rows["beta-0.5"]["eval: precision"]) == 0.875


# Judged with z from the prior and from the per-class mixture ("density"), as `experiment --from density` leaves it.
VALID_SOURCES = json.dumps({**json.loads(VALID), "conditional_accuracy": 0.5, "density_fid_like": 7.25,
                            "density_precision": 0.625, "density_recall": 0.375, "density_conditional_accuracy": 0.75})


@pytest.mark.parametrize("damaged", [VALID_SOURCES[:30], None], ids=["cut-short", "valid"])
def test_experiment_from_prints_the_damaged_runs_line_under_its_sources_table(finished_run, tmp_path, capsys,
                                                                              monkeypatch, damaged):
    """Both runs finished and evaluated: the command trains and evaluates nothing, prints its table per source of z
    (the valid run's rows) and, under it, the damaged run's one line, worded as `vae-explorer runs` says it."""
    from core.experiments import spec as specs

    spec = beta_sweep("digits", "quick", betas=(0.5, 2.0))
    monkeypatch.setitem(specs.EXPERIMENTS, "beta-sweep", lambda dataset, scale: spec)
    finished_run(tmp_path / "beta-0.5", VALID_SOURCES)
    finished_run(tmp_path / "beta-2", VALID_SOURCES if damaged is None else damaged)
    code = main(["experiment", "beta-sweep", "--dataset", "digits", "--out", str(tmp_path), "--quiet",
                 "--from", "density"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err and "evaluating" not in out, (out, err)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("run "))
    assert lines[header + 1].split()[:5] == ["beta-0.5", "prior", "50.0%", "12.5", "0.875"]
    assert lines[header + 2].split()[:5] == ["beta-0.5", "density", "75.0%", "7.25", "0.625"]
    if damaged is None:
        assert [line.split()[:2] for line in lines[header + 3:header + 5]] == [["beta-2", "prior"],
                                                                              ["beta-2", "density"]]
        assert "damaged" not in out and "not valid JSON" not in out
    else:
        assert lines[header + 3:] == [f"beta-2: {CUT_SHORT}"]                 # its line, under the table
        assert runs_cli_reason(capsys, tmp_path, "beta-2") == CUT_SHORT           # as `runs` words it


def runs_cli_reason(capsys, folder, run: str) -> str:
    """The last cell of `run`'s row in `vae-explorer runs FOLDER`'s evaluation table (a damaged file's one line)."""
    assert main(["runs", str(folder)]) == 0
    out = capsys.readouterr().out
    rows = out[out.index("\nevaluation "):].splitlines()
    return next(line.split(maxsplit=5)[-1] for line in rows if line.startswith(f"{run} "))
