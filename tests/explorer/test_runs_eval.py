"""The Runs panel's comparison shows each run's evaluation (eval.json): precision, recall, sharpness and the rest,
read on a worker. The runs are a tiny real beta sweep on the digits."""

from __future__ import annotations

import pytest

from core.runs.evaluation import read_eval


@pytest.fixture(scope="module")
def sweep(tiny_beta_sweep):
    spec, out = tiny_beta_sweep
    return [out / r.name for r in spec.runs]


def test_compared_runs_show_their_evaluation(compared_runs, sweep):
    _, table, names, columns = compared_runs(sweep[0].parent, sweep, "test: precision")
    for label in ("test: recall", "test: sharpness", "test: conditional accuracy", "test: Fréchet score (judge)"):
        assert label in names
    for path in sweep:
        result = read_eval(path)
        column = columns.index(path.name)
        for key in ("precision", "recall", "sharpness"):
            assert table.item(names.index(f"test: {key}"), column).text() == f"{result[key]:.4g}"


def test_a_damaged_eval_json_is_marked_in_the_comparison(compared_runs, finished_run, tmp_path):
    """A run whose eval.json is cut short: "damaged" (a warning icon) in the "test: evaluation" row, the reader's one
    line in the tooltip of its evaluation cells; the valid run's file is named there, with no tooltip."""
    import json

    from core.runs.evaluation import read_run_eval

    valid = json.dumps({"split": "test", "fid_like": 12.5, "precision": 0.875, "recall": 0.25})
    good = finished_run(tmp_path / "runs" / "good", valid)
    cut = finished_run(tmp_path / "runs" / "cut-short", valid[:30])
    problem = read_run_eval(cut).problem
    assert problem == "eval.json is not valid JSON (cut short or damaged)"
    _, table, rows, columns = compared_runs(tmp_path / "runs", [good, cut], "test: precision")
    row, precision = rows.index("test: evaluation"), rows.index("test: precision")
    damaged, fine = table.item(row, columns.index("cut-short")), table.item(row, columns.index("good"))
    assert damaged.text() == "damaged" and damaged.toolTip() == problem
    assert not damaged.icon().isNull()
    assert table.item(precision, columns.index("cut-short")).text() == ""
    assert table.item(precision, columns.index("cut-short")).toolTip() == problem
    assert fine.text() == "eval.json" and fine.toolTip() == "" and fine.icon().isNull()
    assert table.item(precision, columns.index("good")).text() == "0.875"
    assert table.item(precision, columns.index("good")).toolTip() == ""
