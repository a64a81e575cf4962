"""The Runs panel on run folders written by the CLI: listed (an unreadable one with its reason, a damaged one marked and
counted, never hidden), read on a worker, compared with the curve tools (curves overlaid with the runs' own values,
settings that differ, metrics), tagged and annotated, filtered, exported (never over a run's records), reported
(opened, or its path shown with a Copy button), and opened as models."""

from __future__ import annotations

import csv
import json
import shutil
import threading

import numpy as np
import pytest
from PySide6.QtCore import QThread, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from core import cli
from core.errors import UserError
from core.paths import runs_dir
from core.runs.smoothing import ema_smooth
from explorer.panels.runs import RunsPanel
from explorer.state import AppState

TINY = ["--epochs", "2", "--per-class", "10", "--batch-size", "32", "--set", "model.width=4", "--set",
        "model.latent_dim=2", "--set", "model.stages=1", "--set", "train.log_every=1", "--quiet"]


@pytest.fixture(scope="module")
def runs():
    """Two runs that differ in beta, a folder whose run record is garbage, and a copy of the first run with one
    damaged record (wrong-typed) in the middle, in the user's runs folder."""
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
    damaged = root / "damaged"
    if not damaged.exists():
        shutil.copytree(paths[0], damaged)
        lines = (damaged / "metrics.jsonl").read_bytes().splitlines(keepends=True)
        bad = json.dumps({"type": "epoch", "epoch": "one", "step": 3, "train": {}, "val": {}}).encode() + b"\n"
        (damaged / "metrics.jsonl").write_bytes(b"".join([*lines[:3], bad, *lines[3:]]))
    return root, paths, broken, damaged


@pytest.fixture
def panel(qtbot, runs):
    from PySide6.QtCore import QSettings

    from explorer.settings import EXPERIMENT_FOLDERS, RUNS_TAB_FOLDERS

    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
        QSettings().remove(key)        # only this test's folders (another test may have added its own)
    state = AppState()
    p = RunsPanel(state)
    qtbot.addWidget(p)
    p.add_folder(str(runs[0]))
    p.resize(1280, 800)
    p.show()
    qtbot.waitUntil(lambda: len(p.runs) >= 4, timeout=60_000)
    yield p
    p.shutdown()


def rows(panel: RunsPanel) -> list[list[str]]:
    return [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())]
            for r in range(panel.table.rowCount())]


def visible_names(panel: RunsPanel) -> list[str]:
    table = panel.table
    return sorted(table.item(r, 0).text() for r in range(table.rowCount()) if not table.isRowHidden(r))


def test_lists_every_run_marks_the_damaged_one_and_counts_what_was_skipped(panel, runs):
    _, paths, broken, damaged = runs
    by_path = {r.path: r for r in panel.runs}
    assert by_path[paths[0]].status == "completed" and by_path[paths[0]].epochs_done == 2
    assert by_path[broken].status == "unreadable" and by_path[broken].reason
    # The damaged record marks its run, which is still listed with its epochs and best value.
    assert by_path[damaged].status == "completed" and by_path[damaged].damaged == 1
    assert by_path[damaged].best_val == by_path[paths[0]].best_val
    assert any("unreadable" in row for row in rows(panel))
    names = [panel.table.item(r, 0).text() for r in range(panel.table.rowCount())]
    marked = {n for r, n in enumerate(names) if not panel.table.item(r, 0).icon().isNull()}
    assert marked == {"damaged", "broken"}
    line = panel.table_view.damage
    assert line.isVisible() and "1 record skipped in 1 run" in line.text() and "1 run unreadable" in line.text()
    tip = line.toolTip().splitlines()      # which runs, and why
    assert tip[0].startswith("damaged: ") and "skipped 1 unreadable line(s) of metrics.jsonl (line 4: " in tip[0]
    assert tip[1].startswith("broken: ")
    panel.filter.setText("beta-2")
    assert visible_names(panel) == ["beta-2.0"]


def test_the_runs_are_read_on_a_worker_while_the_window_keeps_responding(panel, qtbot, monkeypatch):
    """find_runs blocked on purpose: the GUI thread still runs its timers and takes typing; the read was not on it."""
    import core.runs.history as history

    real, release, seen = history.find_runs, threading.Event(), {}

    def slow_find_runs(folders, **kw):
        seen["thread"] = QThread.currentThread()
        release.wait(20)
        return real(folders, **kw)

    monkeypatch.setattr(history, "find_runs", slow_find_runs)
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    assert panel.refresh() is not None
    qtbot.waitUntil(lambda: "thread" in seen, timeout=10_000)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=5_000)     # the event loop runs while the read is blocked
    timer.stop()
    qtbot.keyClicks(panel.filter, "beta")
    assert panel.filter.text() == "beta" and panel.tasks.busy("runs")
    assert seen["thread"] is not QApplication.instance().thread()
    release.set()
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    assert visible_names(panel) == ["beta-0.5", "beta-2.0"]


def test_compare_draws_each_runs_values_with_the_curve_tools(panel, runs, qtbot):
    from core.runs.history import load_series

    _, paths, _, damaged = runs
    panel.select_paths([paths[0], damaged, paths[1]])
    panel.compare_selected()
    curves = panel.compare_view.curves_view
    qtbot.waitUntil(lambda: len(curves.curves) == 3, timeout=30_000)   # curves are read on a worker
    curves.series_box.setCurrentText("loss")
    curves.controls.slider.setValue(0)                                 # no smoothing: the records' own values
    for path in (paths[0], paths[1]):
        xs, ys = curves.curves[path].getData()
        series = load_series(path)["loss"]
        np.testing.assert_allclose(ys, series.value)
        np.testing.assert_allclose(xs, series.step)
    curves.controls.slider.setValue(60)                                # TensorBoard's smoothing of the same values
    _, ys = curves.curves[paths[0]].getData()
    np.testing.assert_allclose(ys, ema_smooth(load_series(paths[0])["loss"].value, 0.6))
    # The copy with one damaged record has the same curve: drawn all the same, in another colour and dash.
    pens = [curves.curves[p].opts["pen"] for p in (paths[0], damaged)]
    assert pens[0].color() != pens[1].color() and pens[0].style() != pens[1].style()
    np.testing.assert_allclose(curves.curves[damaged].getData()[1], curves.curves[paths[0]].getData()[1])
    # The legend names the setting that differs; the settings tab shows it; epochs on x; the crosshair reads values.
    view = panel.compare_view
    assert "model.beta" in view.diff_view.toPlainText()
    legend = [label.text for _, label in curves.plot.getPlotItem().legend.items]
    assert any("beta=2.0" in text for text in legend)
    lines, _ = curves.plot.readout_at(1.0)
    assert len([line for line in lines if "raw" in line or "@" in line]) == 3
    curves.controls.set_x_axis("epoch")
    xs, _ = curves.curves[paths[0]].getData()
    assert set(np.unique(xs)) <= {1.0, 2.0}
    curves.plot.set_log_y(True)
    assert curves.plot.getPlotItem().ctrl.logYCheck.isChecked()
    assert view.metrics_table.columnCount() == 3


def test_the_compared_plot_reads_in_the_light_look(panel, runs, qtbot):
    _, paths, _, _ = runs
    panel.select_paths(paths)
    panel.compare_selected()
    plot = panel.compare_view.curves_view.plot
    qtbot.waitUntil(lambda: len(plot.items) == 2, timeout=30_000)
    background = plot.backgroundBrush().color()
    assert background == plot.palette().color(plot.palette().ColorRole.Base)
    axis_pen = plot.getPlotItem().getAxis("left").pen().color()
    assert abs(axis_pen.lightness() - background.lightness()) > 100     # dark text on light, or light on dark


def test_tags_and_notes_round_trip_and_filter(panel, runs, qtbot):
    from core.runs.tags import read_notes

    _, paths, _, _ = runs
    panel.select_paths(paths[1:])
    editor = panel.notes_editor
    assert editor.isEnabled() and editor.tags.isEnabled()
    editor.tags.setText("")
    qtbot.keyClicks(editor.tags, "baseline, #Sweep")
    qtbot.keyClicks(editor.note, "lr too high")
    editor.save_button.click()
    qtbot.waitUntil(lambda: not panel.tasks.busy("notes"), timeout=30_000)
    assert read_notes(paths[1])[0].tags == ("baseline", "sweep")
    assert read_notes(paths[1])[0].note == "lr too high"
    panel.refresh()
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    row = next(r for r in rows(panel) if r[0] == "beta-2.0")
    assert row[1] == "baseline, sweep" and row[10] == "lr too high"
    panel.filter.setText("tag:base")
    assert visible_names(panel) == ["beta-2.0"]
    panel.filter.setText("#sweep high")
    assert visible_names(panel) == ["beta-2.0"]
    panel.filter.setText("tag:nothing")
    assert visible_names(panel) == []
    # Typing is not overwritten by the periodic refresh of the same run.
    panel.filter.setText("")
    panel.select_paths(paths[1:])
    qtbot.keyClicks(editor.tags, ", more")
    panel.refresh()
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    assert editor.tags.text() == "baseline, sweep, more"
    editor.tags.setText("")
    editor.note.setText("")
    editor.save()
    qtbot.waitUntil(lambda: not panel.tasks.busy("notes"), timeout=30_000)
    assert read_notes(paths[1])[0].tags == ()


def test_exports_never_overwrite_a_runs_records(panel, runs, qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    _, paths, _, _ = runs
    run = paths[0]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    panel.select_paths(paths)
    for name in ("metrics.jsonl", "config.json", "samples/x.csv"):
        with pytest.raises(UserError, match="would overwrite the records of the run folder"):
            panel.exports.export_csv(str(run / name))
    with pytest.raises(UserError, match="would overwrite the records"):
        panel.exports.write_report(str(run / "metrics.jsonl"))
    # Through the file dialog: one clear message, nothing written.
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(run / "metrics.jsonl"), ""))
    panel.csv_button.click()
    box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
    assert "would overwrite the records of the run folder" in box.text() and len(box.text().splitlines()) == 1
    box.close()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_export_report_open_report_and_open(panel, runs, tmp_path, qtbot, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    from explorer.widgets.path_dialog import PathDialog

    _, paths, _, _ = runs
    panel.select_paths(paths)
    out = panel.exports.export_csv(str(tmp_path / "runs.csv"))
    with open(out, newline="") as f:
        assert {r["name"] for r in csv.DictReader(f)} == {"beta-0.5", "beta-2.0"}
    assert not panel.open_report_button.isEnabled()
    report = panel.exports.write_report(str(tmp_path / "report.html"))
    html = report.read_text()
    assert html.count("<svg") >= 1 and "beta-0.5" in html and "data:image/png;base64," in html
    assert panel.open_report_button.isEnabled()
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    panel.open_report_button.click()
    assert opened == [str(report)]
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, PathDialog) and w.isVisible()]
    # No browser: the path, with a Copy button.
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)
    panel.open_report_button.click()
    (dialog,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, PathDialog) and w.isVisible()]
    assert dialog.path_edit.text() == str(report)
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == str(report)
    dialog.close()
    panel.select_paths(paths[:1])
    panel.open_selected()
    qtbot.waitUntil(lambda: len(panel.state.models) == 1, timeout=30_000)   # loaded on a worker
    (entry,) = panel.state.models
    assert entry.name == "beta-0.5" and entry.loaded.config.model.beta == 0.5


def test_a_multi_selection_survives_the_periodic_refresh(panel, runs, qtbot):
    """Two runs selected, then the 3 s refresh (e.g. while the Report file dialog is open): both stay selected, so
    the report and the CSV cover both (the refresh used to re-select row by row, keeping only the last)."""
    _, paths, _, _ = runs
    panel.select_paths(paths)
    assert {r.path for r in panel.selected_runs()} == set(paths)
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    worker = panel.refresh()
    assert worker is not None
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=30_000)
    assert {r.path for r in panel.selected_runs()} == set(paths)
    assert set(panel.exports.report_runs()) == set(paths)


def test_the_tab_as_a_user_sees_it(panel, runs, qtbot, tmp_path):
    """A screenshot of the tab with a comparison (under pytest's tmp_path), for a look by eye when needed."""
    _, paths, _, _ = runs
    panel.select_paths(paths)
    panel.compare_selected()
    qtbot.waitUntil(lambda: len(panel.compare_view.curves_view.curves) == 2, timeout=30_000)
    assert panel.grab().save(str(tmp_path / "runs.png"))
    assert (tmp_path / "runs.png").stat().st_size > 10_000
