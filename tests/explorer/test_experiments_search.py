"""The settings search from the Experiments tab: a tiny Optuna study runs off the GUI thread, its trials fill the
table (state, settings, value, pruned ones marked), the best so far is named, and "Open best model" puts the best
trial's run into the app's models list (as the Runs tab's Open does)."""

from __future__ import annotations

import pytest

pytest.importorskip("optuna", reason="the search extra is not installed")

from core.experiments.search import Param, SearchSettings
from explorer.panels.study_view import StudyView
from explorer.state import AppState

# Tiny trials (a second or two each); lr 1e-6 learns nothing, so its curve is the one the median pruner cuts.
TINY = {"model.width": 4, "model.latent_dim": 4, "model.stages": 1, "train.batch_size": 128, "train.threads": 1,
        "train.ema_decay": 0.0, "train.log_every": 4}


@pytest.mark.slow
def test_a_tiny_search_fills_the_trials_table_and_opens_the_best_model(qtbot, tmp_path, monkeypatch):
    state = AppState()
    view = StudyView(state)
    qtbot.addWidget(view)
    view.show()
    view.out.setText(str(tmp_path / "study"))
    assert view.dataset.dataset() == "digits" and view.objective.currentData() == ("elbo",)
    assert not view.open_button.isEnabled()
    settings = SearchSettings(dataset=view.dataset.dataset(), objectives=view.objective.currentData(),
                              budget_s=300.0, trials=6, epochs=4, fixed=TINY, seed=1,
                              space=(Param("train.lr", choices=(0.002, 1e-6)),))
    assert view.start(settings)
    assert view.is_running() and not view.start_button.isEnabled()
    qtbot.waitUntil(lambda: view.snapshot is not None and len(view.snapshot.rows) >= 1, timeout=60_000)
    assert view.snapshot.rows[0].state in ("running", "complete")          # shown as soon as it starts
    qtbot.waitUntil(lambda: not view.is_running(), timeout=300_000)
    snap = view.snapshot
    assert len(snap.rows) == 6 and view.table.rowCount() == 6
    states = {r.number: r.state for r in snap.rows}
    assert set(states.values()) <= {"complete", "pruned"} and "pruned" in states.values(), states
    headers = [view.table.horizontalHeaderItem(j).text() for j in range(view.table.columnCount())]
    assert headers[:4] == ["trial", "state", "lr", "elbo"]
    for i, r in enumerate(snap.rows):
        assert view.table.item(i, 1).text() == r.state
        assert float(view.table.item(i, 2).text()) == pytest.approx(r.params["train.lr"], rel=1e-3)
        if r.state == "pruned":
            assert r.params["train.lr"] == 1e-6 and view.table.item(i, 3).text() == "—"
            assert "pruned at epoch" in view.table.item(i, view.table.columnCount() - 1).text()
        else:
            assert float(view.table.item(i, 3).text()) == pytest.approx(r.values[0], rel=1e-3)
    complete = [r for r in snap.rows if r.state == "complete"]
    best = max(complete, key=lambda r: r.values[0])
    assert snap.best == (best.number,) and best.params["train.lr"] == 0.002
    assert f"Best so far: trial {best.number}" in view.best.text()
    assert view.table.item(snap.rows.index(best), 0).text().endswith("★")
    assert view.progress.value() == 1000
    # The plot: every complete trial's value by its number, the best so far never falling.
    numbers, best_line = view.plot.best_line
    assert list(numbers) == [r.number for r in complete]
    assert best_line[-1] == pytest.approx(best.values[0]) and (best_line[1:] >= best_line[:-1]).all()
    # The search's report, as the CLI writes it; without a browser its path is shown with a Copy button.
    assert view.report_path == tmp_path / "study" / "search-report.html" and view.report_button.isEnabled()
    assert f"Best trial {best.number}" in view.report_path.read_text()
    from PySide6.QtGui import QDesktopServices

    from explorer.widgets.path_dialog import PathDialog

    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)
    view.report_button.click()
    dialog = view.findChild(PathDialog)
    assert dialog is not None and dialog.path_edit.text() == str(view.report_path)
    dialog.close()
    # Open best model: the best trial's run joins the models list, shown.
    assert view.open_button.isEnabled()
    view.open_button.click()
    qtbot.waitUntil(lambda: len(state.models) == 1, timeout=30_000)
    entry = state.models[0]
    assert entry.name == f"search/{best.run}" and entry.source == "run folder"
    assert state.vae is entry.loaded and entry.loaded.config.train.lr == 0.002
    view.shutdown()

    # Another window follows the study folder (a search run elsewhere): the same trials and best, from study.db.
    other = StudyView(AppState())
    qtbot.addWidget(other)
    other.follow(tmp_path / "study")
    qtbot.waitUntil(lambda: other.snapshot is not None, timeout=30_000)
    assert other.snapshot.rows == snap.rows and other.snapshot.best == snap.best
    assert other.snapshot.objectives == ("elbo",) and other.timer.isActive()
    assert f"Best so far: trial {best.number}" in other.best.text() and other.open_button.isEnabled()
    # A folder without a study: one line, and it stops reading.
    other.follow(tmp_path)
    qtbot.waitUntil(lambda: not other.timer.isActive(), timeout=30_000)
    assert other.status.text().startswith("failed: ") and "holds no study.db" in other.status.text()
    other.shutdown()
