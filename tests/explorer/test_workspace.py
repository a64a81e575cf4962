"""Workspace sessions (issue 23): what the user set up is saved on quit and restored on launch (models list, pins,
panel settings, the Train form), an interrupted run offers Resume, File > Save workspace as / Open workspace, Close
with Undo, the first-run hint. Every window here quits and a second one launches on the same workspace file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

# pytest puts this folder on sys.path (see test_models_list.py for why not `tests.explorer...`)
from test_app import tiny_checkpoint
from test_train_panel import tiny

from core.paths import bundled_model
from core.training.checkpoint import load_model
from explorer.main_window import MainWindow
from explorer.state import AppState
from explorer.workspace import FIRST_RUN_KEY, default_workspace_path
from explorer.workspace_file import VERSION

pytestmark = pytest.mark.skipif(bundled_model("vae") is None, reason="needs resources/digits-vae.safetensors")


def launch(qtbot, workspace: Path | None, *, hint_seen: bool = True) -> MainWindow:
    """A window as `vae-explorer` opens it: the bundled dataset and models, then the saved workspace."""
    QSettings().setValue(FIRST_RUN_KEY, hint_seen)
    win = MainWindow(AppState(), workspace=workspace)
    qtbot.addWidget(win)
    win.show()
    win.load_initial(None)
    qtbot.waitUntil(lambda: win.session.restored and win.state.vae is not None, timeout=120_000)
    qtbot.waitUntil(lambda: not any(w._task == "workspace" for w in win._workers), timeout=120_000)
    return win


def entry_named(win: MainWindow, name: str):
    return next(e for e in win.state.models if e.name == name)


def test_quit_saves_the_workspace_and_launch_restores_it(qtbot, tmp_path, tiny_beta_sweep):
    ws = tmp_path / "ws.json"
    kept = tiny_checkpoint(tmp_path / "kept.safetensors")
    gone = tiny_checkpoint(tmp_path / "gone.safetensors")
    spec, sweep = tiny_beta_sweep
    first = launch(qtbot, ws)
    state = first.state
    bundled = state.shown["vae"]
    for path in (kept, gone):
        with qtbot.waitSignal(first.open_checkpoint(str(path)).finished, timeout=60_000):
            pass
    state.rename(entry_named(first, "kept.safetensors"), "my tiny VAE")
    first.views["sampler"].pin("vae", entry_named(first, "my tiny VAE"))
    state.show(bundled)                                    # the bundled VAE shown, the tiny one pinned in the Sampler
    first.models_list.follow.setChecked(True)
    # Panel settings, each in its own panel ...
    first.panels["latent_map"].method_box.setCurrentText("PCA")
    first.panels["sampler"].temperature.setValue(0.7)
    first.panels["sampler"].source.setCurrentIndex(1)      # the fitted density
    first.panels["restore"].corruption.setCurrentText("blur")
    form = first.panels["experiments"].form
    form.name_box.setCurrentText(spec.name)
    form.out.setText(str(sweep))
    form.out.editingFinished.emit()
    # ... and the Train form, as typed.
    first.train_panel.train_form.set_field("epochs", 7)
    first.train_panel.vae_form.set_field("latent_dim", 5)
    first.close()
    saved = json.loads(ws.read_text())
    assert saved["version"] == VERSION
    assert [m["name"] for m in saved["models"]][-2:] == ["my tiny VAE", "gone.safetensors"]
    assert saved["settings"]["latent_map.projection"] == "pca" and saved["settings"]["sampler.temperature"] == 0.7
    assert ws.stat().st_size < 8000      # a small file a colleague can open: checkpoints are named, not copied

    gone.unlink()
    second = launch(qtbot, ws)
    state = second.state
    names = [e.name for e in state.models]
    assert names.count("my tiny VAE") == 1 and "gone.safetensors" not in names
    tiny_entry = entry_named(second, "my tiny VAE")
    assert tiny_entry.source == "checkpoint" and Path(tiny_entry.loaded.path).resolve() == kept.resolve()
    assert second.views["sampler"].pinned["vae"] is tiny_entry
    assert state.shown["vae"].source == "bundled" and state.vae is state.shown["vae"].loaded
    assert second.models_list.follow.isChecked()
    (dropped,) = second.session.notices.texts()           # the missing checkpoint: dropped, with a note
    assert "gone.safetensors" in dropped and "no longer exists" in dropped and second.session.notices.isVisible()
    assert second.panels["latent_map"].method_box.currentText() == "PCA"
    assert second.panels["sampler"].temperature.value() == pytest.approx(0.7)
    assert second.panels["sampler"].controls.source_name() == "density"
    assert second.panels["restore"].corruption.currentText() == "blur"
    experiments = second.panels["experiments"]
    assert experiments.form.name_box.currentText() == spec.name and experiments.form.out.text() == str(sweep)
    # The unfinished experiment in that folder shows its progress (its runs done there) and "Continue".
    qtbot.waitUntil(lambda: experiments.table.snapshot is not None and experiments.table.finished_rows() > 0,
                    timeout=30_000)
    assert experiments.start_button.text() == "Continue"
    assert second.train_panel.train_form.raw_values()["epochs"] in (7, "7")
    assert second.train_panel.vae_form.raw_values()["latent_dim"] in (5, "5")


def test_an_interrupted_run_offers_resume_and_resumes_in_its_folder(qtbot, tmp_path):
    ws = tmp_path / "ws.json"
    first = launch(qtbot, ws)
    panel = first.train_panel
    tiny(panel, epochs=3)
    panel.vae_form.set_field("latent_dim", 3)              # not the bundled model's: the run is recognisable
    assert panel.start_training()
    qtbot.waitUntil(lambda: any(e.source == "training" for e in first.state.models), timeout=120_000)
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.stop()
    run = next(e for e in first.state.models if e.source == "training")
    folder = Path(run.folder)
    assert (folder / "checkpoints" / "last.safetensors").is_file()
    first.state.rename(run, "half-trained")
    first.close()

    second = launch(qtbot, ws)
    entry = entry_named(second, "half-trained")
    assert entry.status == "interrupted" and entry.folder == str(folder)
    notices = second.session.notices
    (row,) = notices.notices
    assert "half-trained was interrupted at epoch" in notices.texts()[0]
    train = second.train_panel
    with qtbot.waitSignal(train.runFinished, timeout=180_000) as finished:
        notices.buttons(row)["Resume"].click()
    assert finished.args == ["completed"] and not notices.notices
    assert Path(train.run_dir).resolve() == folder.resolve()
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert any("resumed from" in str(r) for r in records) and "completed" in str(records[-1])
    # The resumed run took the interrupted entry's place and name.
    (resumed,) = [e for e in second.state.models if e.name == "half-trained"]
    assert resumed is not entry and resumed.loaded.epoch == 3 and resumed.status == "completed"


def test_save_workspace_as_and_open_it_and_a_bad_file_changes_nothing(qtbot, tmp_path):
    win = launch(qtbot, None)
    state = win.state
    tiny = tiny_checkpoint(tmp_path / "colleague.safetensors")
    with qtbot.waitSignal(win.open_checkpoint(str(tiny)).finished, timeout=60_000):
        pass
    state.rename(entry_named(win, "colleague.safetensors"), "from Ana")
    win.panels["sampler"].temperature.setValue(0.5)
    shared = win.session.save_as(tmp_path / "shared")
    assert shared == tmp_path / "shared.json" and json.loads(shared.read_text())["version"] == VERSION

    # Closing it here and changing a setting, then opening the file: both come back.
    state.close(entry_named(win, "from Ana"), undoable=False)
    win.panels["sampler"].temperature.setValue(1.3)
    assert win.session.open(shared)
    qtbot.waitUntil(lambda: any(e.name == "from Ana" for e in state.models), timeout=60_000)
    assert win.panels["sampler"].temperature.value() == pytest.approx(0.5)

    # Unreadable, corrupt, wrong-version, foreign files: one clear line each, the workspace untouched.
    names_before = [e.name for e in state.models]
    bad = {"corrupt.json": b'{"version": 1, "models": [', "newer.json": b'{"version": 99}',
           "foreign.json": b'{"version": 1, "models": [{"name": 3}]}', "photo.json": bytes(range(256))}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    for name in [*bad, "missing.json"]:
        win.session.notices.clear()
        assert not win.session.open(tmp_path / name)
        (message,) = win.session.notices.texts()
        assert message.startswith("Could not open the workspace: ") and name in message and "\n" not in message
        assert "Traceback" not in message
    assert "newer VAE Explorer" in _open_message(win, tmp_path / "newer.json")
    assert "not valid JSON" in _open_message(win, tmp_path / "corrupt.json")
    assert [e.name for e in state.models] == names_before
    assert win.panels["sampler"].temperature.value() == pytest.approx(0.5)


def _open_message(win: MainWindow, path: Path) -> str:
    win.session.notices.clear()
    win.session.open(path)
    return win.session.notices.texts()[0]


def test_a_damaged_saved_workspace_is_set_aside_and_the_app_starts(qtbot, tmp_path):
    ws = tmp_path / "ws.json"
    ws.write_text('{"version": 1, "models": [{"name": "x", "source": "checkpoint", "kind": "vae"}]}')
    win = launch(qtbot, ws)
    (message,) = win.session.notices.texts()
    assert "could not be read" in message and "names neither a checkpoint file nor a run folder" in message
    assert not ws.exists() and (tmp_path / "ws.damaged.json").is_file()    # kept for the user, not overwritten
    win.close()
    assert json.loads(ws.read_text())["version"] == VERSION                # the next quit writes a good one


def test_close_shows_the_model_shown_before_and_undo_puts_it_back(qtbot, tmp_path):
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    state, models_list = win.state, win.models_list
    bundled = state.set_model(load_model(bundled_model("vae")))
    first = state.set_model(load_model(tiny_checkpoint(tmp_path / "a.safetensors")))
    newest = state.set_model(load_model(tiny_checkpoint(tmp_path / "b.safetensors")))
    state.show(bundled)
    models_list.select(first)   # shown: b, the bundled one, then a (the newest other one would be b)
    assert state.shown["vae"] is first
    models_list.close_button.click()
    assert first not in state.models and state.shown["vae"] is bundled and state.vae is bundled.loaded
    assert models_list.undo_bar.isVisibleTo(models_list) and "a.safetensors" in models_list.undo_label.text()
    models_list.undo_button.click()
    assert state.models.index(first) == 1 and state.shown["vae"] is first and state.vae is first.loaded
    assert not models_list.undo_bar.isVisibleTo(models_list)
    # The one shown before it closed too: the one shown before that.
    state.show(newest)
    state.show(first)
    state.close(newest)
    state.close(first)
    assert state.shown["vae"] is bundled


def test_the_first_run_hint_is_shown_once(qtbot, tmp_path):
    win = launch(qtbot, tmp_path / "ws.json", hint_seen=False)
    assert any("New here?" in t for t in win.session.notices.texts())
    assert QSettings().value(FIRST_RUN_KEY, False, type=bool)
    win.close()
    again = launch(qtbot, tmp_path / "ws.json", hint_seen=True)
    assert not any("New here?" in t for t in again.session.notices.texts())


def test_without_a_workspace_file_nothing_is_written(qtbot, tmp_path):
    before = default_workspace_path().exists()
    win = launch(qtbot, None, hint_seen=False)
    win.panels["sampler"].temperature.setValue(0.4)
    assert not win.session.notices.texts()                 # no hint either: tests and screenshots stay quiet
    win.close()
    assert default_workspace_path().exists() == before
    assert not QSettings().value(FIRST_RUN_KEY, False, type=bool)
