"""The models list: every model the app holds in one place; selecting one shows it in every panel; training adds
an entry and never replaces what the user is looking at unless they follow training."""

from __future__ import annotations

import pytest

# pytest puts this folder on sys.path (rootdir-relative "prepend" imports). Not `tests.explorer...`: torch-fidelity
# installs a top-level package named `tests`, which would shadow this folder's namespace package.
from test_train_panel import tiny

from core.paths import bundled_model
from core.training.checkpoint import load_model
from explorer.main_window import MainWindow
from explorer.state import AppState


@pytest.fixture
def window(qtbot):
    win = MainWindow(AppState(), defer_panels=False)
    qtbot.addWidget(win)
    win.show()
    return win


def train_once(window, qtbot, epochs: int = 2) -> None:
    panel = window.train_panel
    tiny(panel, epochs=epochs)
    assert panel.start_training()
    with qtbot.waitSignal(panel.runFinished, timeout=120_000):
        pass


def test_training_adds_an_entry_and_keeps_the_shown_model(window, qtbot):
    state = window.state
    bundled = state.set_model(load_model(bundled_model("vae")))
    seen = []
    state.vaeChanged.connect(lambda: seen.append(state.vae))
    train_once(window, qtbot)
    # The user kept looking at the bundled model: the run only added its row.
    assert state.vae is bundled.loaded and seen == []
    (run,) = [e for e in state.models if e.source == "training"]
    assert run.status == "completed" and run.loaded.epoch == 2 and run.kind == "vae"
    assert "completed" in window.models_list.table.item(state.models.index(run), 5).text()
    # Clicking its row shows it: every panel follows (they all read the shown model).
    window.models_list.select(run)
    assert state.vae is run.loaded and seen == [run.loaded]
    for name in ("latent_map", "sampler", "interpolate", "restore"):
        assert window.panels[name].state.vae is run.loaded
    assert "completed, epoch 2" in window.status.model_label.text()
    # ... and back.
    window.models_list.select(bundled)
    assert state.vae is bundled.loaded


def test_follow_training_shows_the_run_as_it_trains(window, qtbot):
    state = window.state
    state.set_model(load_model(bundled_model("vae")))
    window.models_list.follow.setChecked(True)
    window.tabs.setCurrentWidget(window.panels["sampler"])   # looking at another panel: snapshots arrive at once
    train_once(window, qtbot, epochs=2)
    run = next(e for e in state.models if e.source == "training")
    assert state.shown["vae"] is run and state.vae is run.loaded and run.loaded.epoch == 2


def test_status_bar_says_training_then_paused_then_how_it_ended(window, qtbot):
    state, panel = window.state, window.train_panel
    tiny(panel, epochs=500)
    window.tabs.setCurrentWidget(window.panels["sampler"])
    assert panel.start_training()
    qtbot.waitUntil(lambda: state.shown["vae"] is not None, timeout=120_000)   # nothing else shown: the run is
    assert "training, epoch" in window.status.model_label.text()
    panel.toggle_pause()
    assert "paused, epoch" in window.status.model_label.text()
    panel.toggle_pause()
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.stop()
    assert "stopped, epoch" in window.status.model_label.text()


def test_rename_save_and_close(window, qtbot, tmp_path, monkeypatch):
    state = window.state
    a = state.set_model(load_model(bundled_model("vae")))
    b = state.set_model(load_model(bundled_model("vae")))
    assert state.shown["vae"] is b and [e.name for e in state.models] == ["digits-vae.safetensors"] * 2
    row = state.models.index(b)
    window.models_list.table.item(row, 1).setText("my copy")            # what an edit of the name cell does
    assert b.name == "my copy" and "my copy" in window.status.model_label.text()
    out = tmp_path / "saved.safetensors"
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.models_list.select(b)
    window.models_list.save_button.click()
    assert load_model(out).config == b.loaded.config
    window.models_list.close_button.click()       # closing the shown model shows the other one
    assert state.models == [a] and state.vae is a.loaded
    window.models_list.select(a)
    window.models_list.close_button.click()
    assert state.models == [] and state.vae is None
    assert "no model" in window.status.model_label.text()


def test_two_panels_show_two_models(window, qtbot):
    """A panel can pin a model of the list: the sampler keeps model A while the selection (and the latent map)
    moves to model B; the header above the panels names what the current one shows."""
    state = window.state
    a = state.set_model(load_model(bundled_model("vae")))
    state.rename(a, "model A")
    b = state.set_model(load_model(bundled_model("vae")))
    state.rename(b, "model B")
    window.tabs.setCurrentWidget(window.panels["sampler"])
    header = window.header
    combo = header.combos["vae"]
    assert combo.isVisible() and header.combos["diffusion"].isVisible()
    assert combo.currentText().startswith("shown: model B")
    combo.setCurrentIndex(combo.findData(a.id))                     # pin model A for the sampler
    sampler, latent = window.views["sampler"], window.views["latent_map"]
    assert sampler.vae is a.loaded and latent.vae is b.loaded
    assert window.panels["sampler"].state.vae_model is a.loaded.model
    # The selection moves on: the pinned panel stays, the others follow.
    window.models_list.select(a)
    window.models_list.select(b)
    assert sampler.vae is a.loaded and latent.vae is b.loaded
    # The header shows each tab's own choice.
    window.tabs.setCurrentWidget(window.panels["latent_map"])
    assert header.combos["vae"].currentText().startswith("shown: model B")
    assert not header.combos["diffusion"].isVisible()             # the latent map shows no diffusion model
    window.tabs.setCurrentWidget(window.panels["sampler"])
    assert header.combos["vae"].currentText().startswith("pinned: model A")
    assert "dataset:" in header.dataset_label.text()
    # Closing a pinned model returns the panel to the selection.
    state.close(a)
    assert sampler.vae is b.loaded and sampler.pinned["vae"] is None
    assert header.combos["vae"].currentIndex() == 0


def test_follow_training_moves_the_highlight_to_the_model_the_panels_show(qtbot):
    """The highlighted row is what the panels show: a run shown by "Follow training" takes the highlight from the
    model the user had clicked (it used to stay there while every panel showed the run)."""
    from explorer.widgets.models_list import ModelsList

    state = AppState()
    models = ModelsList(state, lambda entry: None)
    qtbot.addWidget(models)
    clicked = state.set_model(load_model(bundled_model("vae")))
    state.set_model(load_model(bundled_model("vae")))
    models.select(clicked)
    assert state.shown["vae"] is clicked and models._selected() is clicked
    models.follow.setChecked(True)
    run = state.update_run("train-1", load_model(bundled_model("vae")), status="training")
    assert state.shown["vae"] is run
    assert models._selected() is run
    rows = {i.row() for i in models.table.selectedItems()}
    assert rows == {state.models.index(run)}
    # closing the shown run: the highlight goes to the model shown instead
    state.close(run)
    assert models._selected() is state.shown["vae"]
