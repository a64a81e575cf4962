"""The window's File actions: open a checkpoint or a run folder (to follow), save a model as a checkpoint, export the
view on screen as a PNG. Models load on the window's workers; every failure is a dialog with one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog, QWidget

from explorer.panel import Panel
from explorer.widgets.dialogs import show_error
from explorer.worker import Worker

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QTabWidget

    from explorer.panels.train import TrainPanel
    from explorer.recent_files import RecentFiles
    from explorer.state import AppState


class Window(Protocol):
    """What the File actions use of the main window (typed here: the window imports this module, not the reverse)."""

    state: AppState
    settings: QSettings
    tabs: QTabWidget
    panels: dict[str, Panel]
    recent: RecentFiles

    @property
    def train_panel(self) -> TrainPanel | None: ...
    def run_worker(self, worker: Worker) -> Worker: ...


class FileActions(QObject):
    def __init__(self, window: Window | QWidget) -> None:
        super().__init__(window)
        self.window: Window = window

    def _last_dir(self) -> str:
        return str(self.window.settings.value("files/last_dir", str(Path.home())))

    def open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent(), "Open checkpoint", self._last_dir(),
                                              "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str) -> Worker:
        self.window.settings.setValue("files/last_dir", str(Path(path).parent))

        def load(p: str = path) -> Any:
            from core.training.checkpoint import load_model

            return load_model(p)

        worker = self.window.run_worker(Worker(load, task="open"))
        worker.result.connect(self._on_checkpoint_loaded)
        return worker

    @Slot(object)
    def _on_checkpoint_loaded(self, loaded: Any) -> None:
        self.window.state.set_model(loaded)
        self.window.recent.add(str(loaded.path))
        self.window.state.statusMessage.emit(f"opened {loaded.path}")

    def open_run_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.parent(), "Open run folder", self._last_dir())
        if path:
            self.open_run_folder(path)

    def open_run_folder(self, path: str) -> None:
        if self.window.train_panel is None:
            show_error(self.parent(), "The Train panel is not available, so run folders cannot be followed.")
            return
        if not (Path(path) / "metrics.jsonl").exists() and not (Path(path) / "config.json").exists():
            show_error(self.parent(), f"{path} is not a run folder (no metrics.jsonl or config.json): choose the "
                                    "folder that `vae-explorer train --out` wrote.")
            return
        self.window.settings.setValue("files/last_dir", str(Path(path).parent))
        self.window.recent.add(str(path))
        self.window.tabs.setCurrentWidget(self.window.train_panel)
        self.window.train_panel.follow_run(path)

    def open_path(self, path: str) -> None:
        if Path(path).is_dir():
            self.open_run_folder(path)
        elif Path(path).is_file():
            self.open_checkpoint(path)
        else:
            show_error(self.parent(), f"{path} no longer exists.")

    def save_checkpoint_dialog(self) -> None:
        loaded = self._current_model()
        if loaded is None:
            show_error(self.parent(), "There is no model to save yet: open a checkpoint or train one.")
            return
        path, _ = QFileDialog.getSaveFileName(self.parent(), "Save checkpoint as", self._last_dir(),
                                              "Checkpoints (*.safetensors)")
        if path:
            self.save_checkpoint(loaded, path)

    def save_entry_dialog(self, entry: Any) -> None:
        path, _ = QFileDialog.getSaveFileName(self.parent(), f"Save {entry.name} as", self._last_dir(),
                                              "Checkpoints (*.safetensors)")
        if path:
            self.save_checkpoint(entry.loaded, path)

    def _current_model(self) -> Any:
        window, state = self.window, self.window.state
        if window.tabs.currentWidget() is window.panels.get("restore") and state.diffusion is not None:
            return state.diffusion
        return state.vae or state.diffusion

    def save_checkpoint(self, loaded: Any, path: str) -> None:
        if not path.endswith(".safetensors"):
            path += ".safetensors"
        try:
            if loaded.path is not None and Path(loaded.path).is_file():
                shutil.copyfile(loaded.path, path)
            else:   # a snapshot from training: no file yet, write one
                from core.training.checkpoint import save_checkpoint

                save_checkpoint(path, model=loaded.model, config=loaded.config, meta=loaded.meta)
        except OSError as exc:
            show_error(self.parent(), f"Could not save {path}: {exc.strerror or exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the dialog boundary: shown (UserError plainly, a bug with details)
            from explorer.widgets.dialogs import show_exception

            show_exception(self.parent(), exc)
            return
        self.window.recent.add(path)
        self.window.state.statusMessage.emit(f"saved {path}")

    def export_png_dialog(self) -> None:
        title = self.window.tabs.tabText(self.window.tabs.currentIndex()).lower().replace("/", "-").replace(" ", "-")
        path, _ = QFileDialog.getSaveFileName(self.parent(), "Export current view as PNG",
                                              str(Path(self._last_dir()) / f"{title}.png"), "PNG images (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str) -> None:
        if not path.lower().endswith(".png"):
            path += ".png"
        panel = self.window.tabs.currentWidget()
        try:
            if isinstance(panel, Panel):
                panel.export_png(path)
            # A placeholder tab (or a panel that had nothing to export) is grabbed as shown.
            if not Path(path).is_file() and not panel.grab().save(path, "PNG"):
                raise OSError(f"could not write {path}")
        except Exception as exc:  # noqa: BLE001 - the dialog boundary: shown (UserError plainly, a bug with details)
            from explorer.widgets.dialogs import show_exception

            show_exception(self.parent(), exc)
            return
        self.window.state.statusMessage.emit(f"exported {path}")
