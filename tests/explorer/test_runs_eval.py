"""The Runs panel's comparison shows each run's evaluation (eval.json): precision, recall, sharpness and the rest,
read on a worker. The runs are a tiny real beta sweep on the digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.runs.evaluation import read_eval
from explorer.state import AppState


@pytest.fixture(scope="module")
def sweep(tiny_beta_sweep):
    spec, out = tiny_beta_sweep
    return [out / r.name for r in spec.runs]


def test_compared_runs_show_their_evaluation(qtbot, sweep):
    from PySide6.QtCore import QSettings

    from explorer.panels.runs import RunsPanel
    from explorer.settings import EXPERIMENT_FOLDERS, RUNS_TAB_FOLDERS

    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
        QSettings().remove(key)
    panel = RunsPanel(AppState())
    qtbot.addWidget(panel)
    panel.add_folder(str(sweep[0].parent))
    panel.show()
    # The session's runs folder may hold other tests' runs too: wait for these two.
    qtbot.waitUntil(lambda: {Path(r.path) for r in panel.runs} >= set(sweep), timeout=60_000)
    panel.select_paths(sweep)
    panel.compare_selected()

    def rows() -> list[str]:
        table = panel.compare_view.metrics_table
        return [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]

    qtbot.waitUntil(lambda: "test: precision" in rows(), timeout=30_000)
    names = rows()
    for label in ("test: recall", "test: sharpness", "test: conditional accuracy", "test: Fréchet score (judge)"):
        assert label in names
    table = panel.compare_view.metrics_table
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    for path in sweep:
        result = read_eval(path)
        column = columns.index(path.name)
        for key in ("precision", "recall", "sharpness"):
            cell = panel.compare_view.metrics_table.item(names.index(f"test: {key}"), column).text()
            assert cell == f"{result[key]:.4g}"
    panel.shutdown()


def test_a_damaged_eval_json_is_marked_in_the_comparison(qtbot, finished_run, tmp_path):
    """A run whose eval.json is cut short: "damaged" (a warning icon) in the "test: evaluation" row, the reader's one
    line in the tooltip of its evaluation cells; the valid run's file is named there, with no tooltip."""
    import json

    from PySide6.QtCore import QSettings

    from core.runs.evaluation import read_run_eval
    from explorer.panels.runs import RunsPanel
    from explorer.settings import EXPERIMENT_FOLDERS, RUNS_TAB_FOLDERS

    valid = json.dumps({"split": "test", "fid_like": 12.5, "precision": 0.875, "recall": 0.25})
    good = finished_run(tmp_path / "runs" / "good", valid)
    cut = finished_run(tmp_path / "runs" / "cut-short", valid[:30])
    problem = read_run_eval(cut).problem
    assert problem == "eval.json is not valid JSON (cut short or damaged)"
    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
        QSettings().remove(key)
    panel = RunsPanel(AppState())
    qtbot.addWidget(panel)
    panel.add_folder(str(tmp_path / "runs"))
    panel.show()
    qtbot.waitUntil(lambda: {Path(r.path) for r in panel.runs} >= {good, cut}, timeout=60_000)
    panel.select_paths([good, cut])
    panel.compare_selected()
    table = panel.compare_view.metrics_table

    def rows() -> list[str]:
        return [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]

    qtbot.waitUntil(lambda: "test: precision" in rows(), timeout=30_000)
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row, precision = rows().index("test: evaluation"), rows().index("test: precision")
    damaged, fine = table.item(row, columns.index("cut-short")), table.item(row, columns.index("good"))
    assert damaged.text() == "damaged" and damaged.toolTip() == problem
    assert not damaged.icon().isNull()
    assert table.item(precision, columns.index("cut-short")).text() == ""
    assert table.item(precision, columns.index("cut-short")).toolTip() == problem
    assert fine.text() == "eval.json" and fine.toolTip() == "" and fine.icon().isNull()
    assert table.item(precision, columns.index("good")).text() == "0.875"
    assert table.item(precision, columns.index("good")).toolTip() == ""
    panel.shutdown()
    QSettings().remove(RUNS_TAB_FOLDERS)
