"""The main window: a tab per panel, the File / View / Run menus, the status bar, settings, and a clean close.

Panels are imported by name; a panel module that does not exist yet becomes a placeholder tab, and one that fails to
import or build becomes a tab showing the error (the other panels keep working). The bundled dataset and models are
loaded on a worker thread after the window is shown, so the window appears before torch is even imported.
"""

from __future__ import annotations

import gc
import importlib
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QSettings, Qt, Slot
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from explorer import style
from explorer.bundled import DeferredModels
from explorer.dataset_follower import DatasetFollower
from explorer.file_actions import FileActions
from explorer.memory import limit_malloc_arenas
from explorer.panel import Panel
from explorer.panel_view import PanelView
from explorer.recent_files import RecentFiles
from explorer.registry import PANELS, PanelEntry
from explorer.startup import is_bundled, load_startup
from explorer.state import AppState
from explorer.widgets.dialogs import show_error
from explorer.widgets.help_menu import add_help_menu
from explorer.widgets.models_list import ModelsList
from explorer.widgets.panel_header import PanelHeader
from explorer.widgets.panel_tabs import DockYields, PanelTabs
from explorer.widgets.status_bar import StatusBar
from explorer.worker import Worker
from explorer.workspace import WorkspaceSession

if TYPE_CHECKING:
    from explorer.panels.train import TrainPanel

class MainWindow(QMainWindow):
    def __init__(self, state: AppState, parent: QWidget | None = None, *, defer_panels: bool = False,
                 workspace: str | Path | None = None) -> None:
        """`defer_panels`: build only the Train panel now and the others once `load_initial`'s worker has imported
        torch (their modules import it at the top: seconds on a busy machine), so the window shows at once.
        `workspace`: the file the session is restored from at launch and saved to on quit (explorer/workspace.py);
        None (tests, screenshots) keeps nothing between launches."""
        super().__init__(parent)
        limit_malloc_arenas()       # before the panels' worker threads exist (explorer/memory.py says why)
        self.state = state
        self.setWindowTitle("VAE Explorer")
        self.settings = QSettings()
        self.panels: dict[str, Panel] = {}   # by registry key ("sampler"), each a Panel and a QWidget
        self.panel_errors: dict[str, str] = {}
        self._workers: list[Worker] = []
        self._closing = False
        state.handedOff.connect(self._show_handed_off)
        self.files = FileActions(self)
        self.bundled = DeferredModels(state, self.run_worker, self)   # a bundled model a panel loads when shown
        self.session = WorkspaceSession(self, workspace)

        self.tabs = PanelTabs()     # a page scrolls below its panel's minimum size: it never widens the window
        self.tabs.setDocumentMode(True)
        self.views: dict[str, PanelView] = {}      # what each panel (but Train) shows: a pin, or the selection
        self.header = PanelHeader()
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.header)
        column.addWidget(self.session.notices)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.tabs.currentChanged.connect(self._on_tab)
        self._deferred: list[PanelEntry] = []
        for entry in map(PanelEntry._make, PANELS):
            if defer_panels and entry.key != "train":
                self._deferred.append(entry)
                self.tabs.addTab(placeholder(f"Loading the {entry.title} panel..."), entry.title)
            else:
                self.tabs.addTab(self._make_panel(entry), entry.title)

        self.models_list = ModelsList(state, self.files.save_entry_dialog)
        self.models_dock = QDockWidget("Models", self)
        self.models_dock.setObjectName("models")       # saveState/restoreState find it by name
        self.models_dock.setWidget(self.models_list)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.models_dock)
        self.resizeDocks([self.models_dock], [440], Qt.Orientation.Horizontal)   # room for the list's columns
        self.installEventFilter(DockYields(self, self.models_dock))   # a narrow window: the list gives way first
        self._build_menus()
        self._on_tab()
        self.status = StatusBar(state, self)   # parented: the window (C++) owns and deletes it
        self.setStatusBar(self.status)
        self.dataset_follower = DatasetFollower(state, self.run_worker, self)
        self._restore_settings()

    # ---- panels -----------------------------------------------------------------------------------------------------
    def _make_panel(self, entry: PanelEntry) -> QWidget:
        """Build the panel `entry` names: with its own PanelView when it declares `takes_view`, else with the app's
        state (explorer/panel.py)."""
        full = entry.import_name
        try:
            cls = getattr(importlib.import_module(full), entry.cls_name)
            if cls.takes_view:
                panel = cls(self.views.setdefault(entry.key, PanelView(self.state, self)))
            else:   # it trains or opens runs: it writes to the app's state
                panel = cls(self.state)
        except ModuleNotFoundError as exc:
            if exc.name != full:
                return error_tab(entry.title, exc, self.panel_errors)
            return placeholder(f"The {entry.title} panel is not built yet.")
        except Exception as exc:  # noqa: BLE001 - a panel that fails to build shows its error in its tab; the rest work
            return error_tab(entry.title, exc, self.panel_errors)
        self.panels[entry.key] = panel
        return panel

    def _on_tab(self, _index: int = -1) -> None:
        """The header names what the panel on screen shows (and offers its pins)."""
        panel = self.tabs.currentWidget()
        key = next((k for k, p in self.panels.items() if p is panel), None)
        uses = panel.uses if isinstance(panel, Panel) else ()
        self.header.show_view(self.views.get(key), uses)
        self.bundled.need(uses)

    def _show_handed_off(self, target: str) -> None:
        """A hand-off was set for `target` (state.hand_off): show the panel that accepts it; it takes the value."""
        panel = next((p for p in self.panels.values() if isinstance(p, Panel) and target in p.accepts), None)
        if panel is None:
            self.state.statusMessage.emit(f"no panel takes this ({target}) here")
            return
        self.tabs.setCurrentWidget(panel)   # shown first: a hidden panel reloads when shown

    def build_deferred_panels(self) -> None:
        """Replace the "Loading..." tabs with their panels (the start-up worker has imported torch by now)."""
        current = self.tabs.currentIndex()
        for entry in self._deferred:
            index = next(i for i in range(self.tabs.count()) if self.tabs.tabText(i) == entry.title)
            old = self.tabs.widget(index)
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, self._make_panel(entry), entry.title)
            old.deleteLater()
        self._deferred = []
        self.tabs.setCurrentIndex(current)
        self._on_tab()

    @property
    def train_panel(self) -> TrainPanel | None:
        return self.panels.get("train")   # type: ignore[return-value]

    # ---- menus ------------------------------------------------------------------------------------------------------
    def _action(self, menu: Any, text: str, slot: Any, shortcut: QKeySequence | str | None = None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "&Open checkpoint...", self.files.open_checkpoint_dialog, QKeySequence.StandardKey.Open)
        self._action(file, "Open &run folder (follow live)...", self.files.open_run_folder_dialog, "Ctrl+Shift+O")
        recent_menu = file.addMenu("Open &recent")
        file.addSeparator()
        self._action(file, "&Save checkpoint as...", self.files.save_checkpoint_dialog, "Ctrl+Shift+S")
        self._action(file, "&Export current view as PNG...", self.files.export_png_dialog, "Ctrl+E")
        file.addSeparator()
        self.session.add_menu_actions(file)
        file.addSeparator()
        self._action(file, "&Quit", self.close, "Ctrl+Q")
        self.recent = RecentFiles(self.settings, recent_menu, self.files.open_path)
        run = bar.addMenu("&Run")
        self.train_action = self._action(run, "&Train / pause", self._toggle_train, "Ctrl+T")
        self._action(run, "&Stop", lambda: self.train_panel is not None and self.train_panel.stop(), "Ctrl+.")
        view = bar.addMenu("&View")
        for i in range(self.tabs.count()):     # every tab; Ctrl+1..9 for the first nine
            self._action(view, f"&{i + 1} {self.tabs.tabText(i)}", lambda _=False, i=i: self.tabs.setCurrentIndex(i),
                         f"Ctrl+{i + 1}" if i < 9 else None)
        view.addSeparator()
        view.addAction(self.models_dock.toggleViewAction())
        view.addSeparator()
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for name in style.THEMES:
            act = self._action(view, f"{name.capitalize()} look", lambda _=False, n=name: self.set_theme(n))
            act.setCheckable(True)
            group.addAction(act)
            self.theme_actions[name] = act
        add_help_menu(self)

    def _toggle_train(self) -> None:
        if self.train_panel is not None:
            self.tabs.setCurrentWidget(self.train_panel)
            self.train_panel.toggle_train()

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        name = style.apply_theme(app, name) if app is not None else "light"
        self.theme_actions[name].setChecked(True)
        self.settings.setValue("view/theme", name)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._closing:
            self.status.start()

    def hideEvent(self, event: Any) -> None:
        self.status.memory_timer.stop()
        super().hideEvent(event)

    # ---- loading ----------------------------------------------------------------------------------------------------
    def run_worker(self, worker: Worker) -> Worker:
        """Start a worker owned by the window (stopped and joined on close); failures go to the error dialog."""
        self._workers.append(worker)
        worker.failed.connect(self.show_error)
        worker.finished.connect(lambda w=worker: self._workers.remove(w) if w in self._workers else None)
        return worker.start()

    def load_initial(self, path: str | None = None) -> None:
        """Open the bundled dataset and models (and `path`: a checkpoint, or a run folder to follow)."""
        if path and Path(path).is_dir():
            self.open_run_folder(path)
            path = None
        worker = self.run_worker(Worker(load_startup, path, task="startup"))
        worker.result.connect(self._on_startup_loaded)
        worker.finished.connect(self._after_startup)   # also when loading failed: the panels must still appear

    def _after_startup(self) -> None:
        if self._deferred and not self._closing:
            self.build_deferred_panels()

    @Slot(object)
    def _on_startup_loaded(self, out: dict[str, Any]) -> None:
        self._after_startup()   # panels first, so they see the dataset and models arrive
        self.status.set_device(out.get("device", ""))
        if "dataset" in out:
            self.state.set_dataset(out["dataset"])
        else:
            self.status.update_dataset()
        for loaded in out["models"]:
            self.state.set_model(loaded)
            if loaded.path is not None and not is_bundled(loaded.path):
                self.recent.add(str(loaded.path))
        if not out["models"]:
            self.status.update_models()
        for kind, path in out.get("deferred", {}).items():
            self.bundled.add(kind, path)
        self._on_tab()     # the tab on screen may need one of them now
        for exc in out["errors"]:
            from explorer.widgets.dialogs import show_exception

            show_exception(self, exc)
        self.session.restore_at_launch()
        # What start-up loaded (torch, models, panels: ~0.5 million objects) lives as long as the app. Out of the
        # collector's generations, a full collection takes ~3 ms instead of pausing the GUI thread (and the training
        # thread, which holds the GIL meanwhile) for ~300 ms: measured by bench/bench_gui_responsiveness.py.
        gc.freeze()

    # ---- file actions (explorer/file_actions.py) -------------------------------------------------------------------
    def open_checkpoint(self, path: str) -> Worker:
        return self.files.open_checkpoint(path)

    def open_run_folder(self, path: str) -> None:
        self.files.open_run_folder(path)

    def save_checkpoint(self, loaded: Any, path: str) -> None:
        self.files.save_checkpoint(loaded, path)

    def export_png(self, path: str) -> None:
        self.files.export_png(path)

    # ---- errors -----------------------------------------------------------------------------------------------------
    @Slot(str, str)
    def show_error(self, message: str, details: str = "") -> None:
        show_error(self, message, details)

    # ---- settings and close -----------------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 820)
        tab = self.settings.value("window/tab", 0)
        try:
            self.tabs.setCurrentIndex(int(tab))
        except (TypeError, ValueError):
            pass
        self.set_theme(str(self.settings.value("view/theme", "light")))

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/tab", self.tabs.currentIndex())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        train = self.train_panel
        if train is not None and train.is_training() and not self._closing:
            answer = QMessageBox.question(
                self, "Training is running",
                "A training run is in progress. Stop it (a checkpoint is saved) and quit?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self._closing = True
        self.status.stop()
        self._save_settings()
        self.session.save_at_quit()
        for panel in self.panels.values():
            try:
                panel.shutdown()
            except Exception:  # noqa: BLE001 - one panel's failure must not keep the others from stopping their threads
                traceback.print_exc()
        # The window's own workers, and (safety net) any worker a panel started and did not join in shutdown():
        # a QThread destroyed while running aborts the process at exit.
        from explorer.worker import running_workers

        workers = list(dict.fromkeys([*self._workers, *running_workers()]))
        for worker in workers:
            worker.stop()
        for worker in workers:
            if not worker.join(60):
                print(f"vae-explorer: the {worker._task or 'background'} task did not stop within 60 s",
                      file=sys.stderr)
        event.accept()


def placeholder(text: str) -> QWidget:
    """A tab's stand-in: a panel not built yet, or still loading."""
    w = QWidget()
    lay = QVBoxLayout(w)
    label = QLabel(text)
    label.setEnabled(False)
    lay.addStretch(1)
    lay.addWidget(label, 0, Qt.AlignmentFlag.AlignCenter)
    lay.addStretch(1)
    return w


def error_tab(title: str, exc: BaseException, errors: dict[str, str]) -> QWidget:
    """A panel that failed to build shows its error in its tab (kept in `errors` by title); the rest work."""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    errors[title] = details
    print(f"vae-explorer: the {title} panel failed to load:\n{details}", file=sys.stderr)
    w = QWidget()
    lay = QVBoxLayout(w)
    lay.addWidget(QLabel(f"The {title} panel failed to load: {type(exc).__name__}: {exc}"))
    text = QPlainTextEdit(details)
    text.setReadOnly(True)
    lay.addWidget(text)
    return w
