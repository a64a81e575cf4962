"""Workspace sessions: the models list, pins, followed run folder, Train form and panel settings saved on quit and
restored on launch; File > Save workspace as... / Open workspace... for a colleague (explorer/workspace_file.py is
the file). Also the notices above the tabs that go with it: models that could not be found any more, a workspace
file that could not be read, an interrupted run to resume, and the first-run hint.

The window owns one `WorkspaceSession`. With no file (`path=None`: tests, the screenshot tool) nothing is read or
written at launch and quit; Save as / Open work all the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QFileDialog, QMenu, QTabWidget, QWidget

from core.config import Config
from core.errors import UserError
from explorer.panel_view import PanelView
from explorer.state import AppState, ModelEntry
from explorer.widgets.notice_bar import NoticeBar
from explorer.worker import Worker
from explorer.workspace_file import Restored, SavedModel, TrainForm, Workspace, read_workspace, write_workspace

if TYPE_CHECKING:
    from explorer.bundled import DeferredModels
    from explorer.panels.train import TrainPanel
    from explorer.widgets.models_list import ModelsList

FIRST_RUN_KEY = "help/first_run_hint_shown"
FIRST_RUN_HINT = ("New here? The Models list on the right holds every model: click one to show it in every tab, "
                  "double-click its name to rename it. Train one in Train (Ctrl+T), explore it in Latent map, and "
                  "find the shortcuts under Help. What you set up is kept for the next launch.")


def default_workspace_path() -> Path:
    """Where the app keeps the workspace between launches: beside the user's runs folder (VAE_EXPLORER_HOME moves
    both)."""
    from core.paths import runs_dir

    return runs_dir().parent / "workspace.json"


class Window(Protocol):
    """What the session uses of the main window (typed here: the window imports this module, not the reverse)."""

    state: AppState
    settings: QSettings
    views: dict[str, PanelView]
    models_list: ModelsList
    tabs: QTabWidget
    bundled: DeferredModels

    @property
    def train_panel(self) -> TrainPanel | None: ...
    def run_worker(self, worker: Worker) -> Worker: ...
    def open_run_folder(self, path: str) -> None: ...


class WorkspaceSession(QObject):
    def __init__(self, window: Window | QWidget, path: str | Path | None = None) -> None:
        super().__init__(window)
        self.window: Window = window
        self.state = window.state
        self.path = Path(path) if path is not None else None
        self.notices = NoticeBar()
        self._restored = self.path is None      # saved on quit only once the launch's workspace is in place
        self._names: dict[str, str] = {}        # run folder -> its saved name, for a followed run's new entry
        self._replaces: dict[str, ModelEntry] = {}   # run folder -> the interrupted entry its resumed run replaces
        self.state.modelsChanged.connect(self._track_runs)
        # The saved workspace is read now, before the window builds its panels: they read their settings when built.
        # Its models wait for `restore_at_launch` (loading them imports torch).
        self._saved: Workspace | None = None
        self._unreadable = ""
        if self.path is not None and self.path.exists():
            try:
                self._saved = read_workspace(self.path)
            except UserError as e:
                self._unreadable = str(e)
            else:
                self.state.settings.replace(self._saved.settings)

    @property
    def restored(self) -> bool:
        """The launch's workspace is in place (or there was none): what quit saves from now on is this session's."""
        return self._restored

    # ---- menus ------------------------------------------------------------------------------------------------------
    def add_menu_actions(self, menu: QMenu) -> None:
        menu.addAction("Save &workspace as...", self.save_as_dialog)
        menu.addAction("Open wor&kspace...", self.open_dialog)

    def save_as_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.parent(), "Save workspace as", str(Path.home() / "workspace.json"),
                                              "Workspaces (*.json)")
        if path:
            self.save_as(path)

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent(), "Open workspace", str(Path.home()),
                                              "Workspaces (*.json);;All files (*)")
        if path:
            self.open(path)

    def save_as(self, path: str | Path) -> Path | None:
        path = Path(path) if str(path).endswith(".json") else Path(f"{path}.json")
        try:
            write_workspace(path, self.capture())
        except UserError as e:
            self.notices.add(str(e))
            return None
        self.state.statusMessage.emit(f"saved the workspace to {path}")
        return path

    def open(self, path: str | Path) -> bool:
        """Replace the workspace by the one in `path` (one notice line and nothing changed when it cannot be read)."""
        try:
            workspace = read_workspace(path)
        except UserError as e:
            self.notices.add(f"Could not open the workspace: {e}")
            return False
        self.apply(workspace, replace=True)
        return True

    # ---- launch and quit --------------------------------------------------------------------------------------------
    def restore_at_launch(self) -> None:
        """After the start-up models are loaded: the first-run hint, then the saved workspace (if any)."""
        if self.path is None:
            return
        settings = self.window.settings
        if not settings.value(FIRST_RUN_KEY, False, type=bool):
            settings.setValue(FIRST_RUN_KEY, True)
            self.notices.add(FIRST_RUN_HINT, [("Got it", lambda: None)])
        if self._unreadable:
            self._restored = True     # the file is set aside: the next quit writes a good one
            aside = self.path.with_name(f"{self.path.stem}.damaged{self.path.suffix}")
            try:
                os.replace(self.path, aside)
                kept = f" (kept as {aside})"
            except OSError:
                kept = ""
            self.notices.add(f"The saved workspace could not be read, so this one starts empty: {self._unreadable}"
                             f"{kept}")
        elif self._saved is None:
            self._restored = True
        else:
            self.apply(self._saved, replace=False)

    def save_at_quit(self) -> None:
        if self.path is None or not self._restored:   # still loading the saved one: keep it as it is
            return
        try:
            write_workspace(self.path, self.capture())
        except UserError as e:
            print(f"vae-explorer: {e}", file=sys.stderr)

    # ---- capture ----------------------------------------------------------------------------------------------------
    def capture(self) -> Workspace:
        state, train = self.state, self.window.train_panel
        models: list[SavedModel] = []
        index_of: dict[int, int] = {}
        for e in state.models:
            path = None if e.folder is not None or e.loaded.path is None else str(Path(e.loaded.path).resolve())
            if path is None and e.folder is None:
                continue          # a snapshot with no file and no run folder: nothing to reopen it from
            index_of[e.id] = len(models)
            models.append(SavedModel(name=e.name, source=e.source, kind=e.kind, path=path, folder=e.folder,
                                     shown=state.shown.get(e.kind) is e))
        following = None
        if train is not None and train.run_dir and train.mode != "idle":
            folder = str(Path(train.run_dir).resolve())
            following = folder if train.mode == "follow" else None
            if all(m.folder != folder for m in models):   # a run with no model yet is still a run to come back to
                models.append(SavedModel(name=Path(folder).name, source="run folder" if following else "training",
                                         kind=train.kind_combo.currentText(), folder=folder))
        pins: dict[str, dict[str, int]] = {}
        for key, view in self.window.views.items():
            for kind, entry in view.pinned.items():
                if entry is not None and entry.id in index_of:
                    pins.setdefault(key, {})[kind] = index_of[entry.id]
        return Workspace(models=models, pins=pins, following=following, follow_training=state.follow_training,
                         train_form=capture_form(train) if train is not None else None,
                         settings=state.settings.to_dict())

    # ---- apply ------------------------------------------------------------------------------------------------------
    def apply(self, workspace: Workspace, *, replace: bool) -> None:
        """Settings and the Train form at once; the models on a worker (they import torch), then placed."""
        state, train = self.state, self.window.train_panel
        matched = self._match(workspace)
        if replace:        # models from files that the opened workspace does not hold leave; live runs stay
            for e in [e for e in state.models if e.run is None and e not in matched.values()]:
                state.close(e, undoable=False)
        if replace:        # at launch the panels were built with them already
            state.settings.replace(workspace.settings)
        self.window.models_list.follow.setChecked(workspace.follow_training)
        if workspace.train_form is not None and train is not None and train.mode == "idle":
            restore_form(train, workspace.train_form)
        for index, entry in matched.items():
            state.rename(entry, workspace.models[index].name)
        from explorer.workspace_file import load_saved_models

        # A bundled model not loaded yet (explorer/bundled.py) stays so: the panel that needs it loads it.
        later = {i for i, m in enumerate(workspace.models) if m.folder is None and m.path and
                 self.window.bundled.defers(m.path)}
        worker = self.window.run_worker(Worker(load_saved_models, workspace, frozenset(matched) | later,
                                               task="workspace"))
        worker.result.connect(lambda restored: self._place(workspace, matched, restored))
        worker.finished.connect(lambda: setattr(self, "_restored", True))

    def _match(self, workspace: Workspace) -> dict[int, ModelEntry]:
        """The saved models already in the app (the bundled ones, a checkpoint given on the command line)."""
        matched: dict[int, ModelEntry] = {}
        for index, saved in enumerate(workspace.models):
            for e in self.state.models:
                same_file = (saved.folder is None and saved.path is not None and e.loaded.path is not None
                             and Path(e.loaded.path).resolve() == Path(saved.path).resolve())
                if (same_file or (saved.folder is not None and e.folder == saved.folder)) \
                        and e not in matched.values():
                    matched[index] = e
                    break
        return matched

    def _place(self, workspace: Workspace, matched: dict[int, ModelEntry], restored: list[Restored]) -> None:
        state = self.state
        entries = dict(matched)
        dropped = []
        for r in restored:
            if r.follow and r.saved.folder is not None:
                self._names[r.saved.folder] = r.saved.name
                self.window.open_run_folder(r.saved.folder)
            elif r.loaded is None:
                dropped.append(f"{r.saved.name} ({r.note})")
            else:
                entry = state.add_model(r.loaded, source=r.saved.source, name=r.saved.name, status=r.status,
                                        show=False)
                entry.folder = r.saved.folder
                entries[r.index] = entry
                if r.resume is not None:
                    self._offer_resume(entry, r)
        for index, entry in entries.items():
            if workspace.models[index].shown:
                state.show(entry)
        for key, kinds in workspace.pins.items():
            view = self.window.views.get(key)
            for kind, index in kinds.items():
                if view is not None and index in entries and kind in view.pinned:
                    view.pin(kind, entries[index])
        if dropped:
            self.notices.add(f"Dropped from the saved workspace (not found any more): {'; '.join(dropped)}")

    # ---- runs -------------------------------------------------------------------------------------------------------
    def _offer_resume(self, entry: ModelEntry, restored: Restored) -> None:
        self.notices.add(f"The run {entry.name} was interrupted at epoch {restored.epochs} (step {restored.step}).",
                         [("Resume", lambda: self.resume(entry, str(restored.resume)))], tooltip=str(restored.resume))

    def resume(self, entry: ModelEntry, checkpoint: str) -> bool:
        """Continue an interrupted run from its last checkpoint in its own folder; its entry is replaced by the
        resumed run's as soon as that has a model."""
        train = self.window.train_panel
        config = Path(checkpoint).parent.parent / "config.json"
        if train is not None and train.mode == "idle" and config.is_file():
            try:      # the run's own settings (its epochs): the Trainer takes the training options from the form
                train.set_config(Config.from_file(config))
            except UserError:
                pass  # the checkpoint holds the data and model settings; the form's training options are used
        if train is None or not train.start_training(resume=checkpoint):
            self.notices.add(f"The run {entry.name} cannot be resumed now: the Train tab is busy or its form is "
                             "invalid; stop its run (or fix the form), then resume.",
                             [("Resume", lambda: self.resume(entry, checkpoint))])
            return False
        if entry.folder is not None:
            self._replaces[entry.folder] = entry
        self.window.tabs.setCurrentWidget(train)
        return True

    def _track_runs(self) -> None:
        """A training run's (or followed folder's) entry learns its run folder when it appears: the Train panel's
        current folder, since a run's entry is made from its first model, after its start record named the folder."""
        train: TrainPanel | None = self.window.train_panel
        if train is None or not train.run_dir:
            return
        for e in list(self.state.models):
            if e.run is None or e.folder is not None:
                continue
            e.folder = folder = str(Path(train.run_dir).resolve())
            name = self._names.pop(folder, None)
            old = self._replaces.pop(folder, None)
            if old is not None and old in self.state.models:
                name = name or old.name
                was_shown = self.state.shown.get(old.kind) is old
                self.state.close(old, undoable=False)
                if was_shown:
                    self.state.show(e)
            if name:
                self.state.rename(e, name)


# ---- the Train form ------------------------------------------------------------------------------------------------
def _forms(panel: TrainPanel) -> dict[str, Any]:
    return {"data": panel.data_form, "vae": panel.vae_form, "diffusion": panel.diffusion_form,
            "train": panel.train_form}


def capture_form(panel: TrainPanel) -> TrainForm:
    """The Train form as typed (even if not valid yet)."""
    preset = panel.preset_combo.currentText() if panel.preset_combo.currentIndex() >= 0 else ""
    return TrainForm(kind=panel.kind_combo.currentText(), preset=preset,
                     values={name: form.raw_values() for name, form in _forms(panel).items()})


def restore_form(panel: TrainPanel, saved: TrainForm) -> None:
    """Put a saved form back; fields this version does not have are left out."""
    forms = _forms(panel)
    panel.kind_combo.setCurrentText(saved.kind)
    for name, values in saved.values.items():
        form = forms.get(name)
        for field, value in values.items():
            if form is not None and field in form.editors:
                form.set_field(field, value)
    panel.preset_combo.setCurrentIndex(panel.preset_combo.findText(saved.preset) if saved.preset else -1)
    panel.validate()
