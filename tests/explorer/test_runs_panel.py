"""The Runs panel on run folders written by the CLI: listed (an unreadable one with its reason), compared (curves
overlaid with the runs' own values, settings that differ, metrics), exported, reported, and opened as models."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from core import cli
from core.paths import runs_dir
from explorer.panels.runs import RunsPanel
from explorer.state import AppState

TINY = ["--epochs", "2", "--per-class", "10", "--batch-size", "32", "--set", "model.width=4", "--set",
        "model.latent_dim=2", "--set", "model.stages=1", "--set", "train.log_every=1", "--quiet"]


@pytest.fixture(scope="module")
def runs():
    """Two runs that differ in beta, and a folder whose run record is garbage, in the user's runs folder."""
    root = runs_dir() / "panel-test"
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for beta in ("0.5", "2.0"):
        path = root / f"beta-{beta}"
        if not path.exists():
            assert cli.main(["train", *TINY, "--set", f"model.beta={beta}", "--out", str(path)]) == 0
        paths.append(path)
    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "metrics.jsonl").write_bytes(b"\xff\x00 not a run record \x80\n")
    return root, paths, broken


@pytest.fixture
def panel(qtbot, runs):
    from PySide6.QtCore import QSettings

    QSettings().remove("runs/folders")        # only this test's folders (another test may have added its own)
    state = AppState()
    p = RunsPanel(state)
    qtbot.addWidget(p)
    p.add_folder(str(runs[0]))
    p.show()
    qtbot.waitUntil(lambda: len(p.runs) >= 3, timeout=60_000)
    yield p
    p.shutdown()


def test_lists_runs_and_the_unreadable_one_with_its_reason(panel, runs):
    _, paths, broken = runs
    by_path = {r.path: r for r in panel.runs}
    assert by_path[paths[0]].status == "completed" and by_path[paths[0]].epochs_done == 2
    assert by_path[broken].status == "unreadable" and by_path[broken].reason
    texts = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())]
             for r in range(panel.table.rowCount())]
    assert any("unreadable" in row for row in texts)
    panel.filter.setText("beta-2")
    visible = [r for r in range(panel.table.rowCount()) if not panel.table.isRowHidden(r)]
    assert [panel.table.item(r, 0).text() for r in visible] == ["beta-2.0"]


def test_compare_overlays_each_runs_own_values(panel, runs, qtbot):
    from core.runs.history import load_series

    _, paths, _ = runs
    panel.select_paths(paths)
    panel.compare_selected()
    qtbot.waitUntil(lambda: set(panel.curves) == set(paths), timeout=30_000)   # curves are read on a worker
    panel.series_box.setCurrentText("loss")
    assert set(panel.curves) == set(paths)
    for path in paths:
        xs, ys = panel.curves[path].getData()
        series = load_series(path)["loss"]
        np.testing.assert_allclose(ys, series.value)
        np.testing.assert_allclose(xs, series.step)
    # The legend names the setting that differs; the settings tab shows it; epochs on x on request.
    assert "model.beta" in panel.diff_view.toPlainText()
    assert any("beta=2.0" in label for label in panel._labels.values())
    panel.x_box.setCurrentText("epoch")
    xs, _ = panel.curves[paths[0]].getData()
    assert set(np.unique(xs)) <= {1.0, 2.0}
    assert panel.metrics_table.columnCount() == 2


def test_export_report_and_open(panel, runs, tmp_path, qtbot):
    _, paths, _ = runs
    panel.select_paths(paths)
    out = panel.export_csv(str(tmp_path / "runs.csv"))
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["name"] for r in rows} == {"beta-0.5", "beta-2.0"}
    report = panel.write_report(str(tmp_path / "report.html"))
    html = report.read_text()
    assert html.count("<svg") >= 1 and "beta-0.5" in html and "data:image/png;base64," in html
    panel.select_paths(paths[:1])
    panel.open_selected()
    qtbot.waitUntil(lambda: len(panel.state.models) == 1, timeout=30_000)   # loaded on a worker
    (entry,) = panel.state.models
    assert entry.name == "beta-0.5" and entry.loaded.config.model.beta == 0.5


def test_a_multi_selection_survives_the_periodic_refresh(panel, runs, qtbot):
    """Two runs selected, then the 3 s refresh (e.g. while the Report file dialog is open): both stay selected, so
    the report and the CSV cover both (the refresh used to re-select row by row, keeping only the last)."""
    _, paths, _ = runs
    panel.select_paths(paths)
    assert {r.path for r in panel.selected_runs()} == set(paths)
    worker = panel.refresh()
    assert worker is not None
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    assert {r.path for r in panel.selected_runs()} == set(paths)
    assert set(panel.report_runs()) == set(paths)
