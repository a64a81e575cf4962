"""The Runs panel: every run folder under the user's runs folder, the folders added here and the Experiments tab's
output folders (each tab its own key: explorer/settings.py), compared side by side.

A composition of small views, each in its own module:
- `RunsTable` (runs_table.py): one row per run (name, tags, start, model kind, dataset and subset, status, epochs, best
  validation, headline metrics, note; unreadable folders with the reason), sorted and filtered (words, `tag:NAME`),
  with a line saying how many damaged records were skipped in which runs (a damaged record marks its run);
- `RunNotesEditor` (runs_notes.py): the selected run's tags and note, saved in its folder's notes.json;
- `CompareView` (runs_compare.py): the selected runs' curves with the dashboard's curve tools (runs_curves.py), the
  settings that differ, their newest sample grids, their metrics and evaluations;
- `RunsExports` (runs_export.py): CSV, the HTML report and "Open report" (a Copy-the-path dialog without a browser).

Every read of the disk runs on a worker (`PanelTasks`): the folders are re-read every few seconds, so runs being
written (by this app, the CLI or a cluster on a shared disk) update live, and a huge or damaged folder never freezes
the window. "Open" puts a run's best checkpoint in the models list. All reading is in core.runs (Qt-free).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from core.runs.history import RunSummary
from core.runs.tags import RunNotes
from explorer.panel import Panel
from explorer.panels.runs_compare import Compared, CompareView, read_compared, read_series
from explorer.panels.runs_export import RunsExports
from explorer.panels.runs_notes import RunNotesEditor
from explorer.panels.runs_table import RunsTable
from explorer.panels.tasks import PanelTasks
from explorer.settings import add_runs_tab_folder, experiment_folders, runs_tab_folders
from explorer.state import AppState
from explorer.widgets.dialogs import show_error
from explorer.worker import Worker

REFRESH_MS = 3000


def read_runs(folders: list[str], compared: list[Path]) -> tuple[list[RunSummary], dict[Path, Any]]:
    """The runs of the folders, and the curves of the compared ones (on a worker: a folder may be huge or odd)."""
    from core.runs.history import find_runs

    return find_runs([Path(f) for f in folders]), read_series(compared)


def write_notes(path: Path, notes: RunNotes) -> Path:
    from core.runs.tags import write_notes

    return write_notes(path, notes)


class RunsPanel(Panel, QWidget):
    title = "Runs"
    takes_view = False   # it opens runs into the app's models list

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = QSettings()
        self.compared: list[RunSummary] = []
        self.tasks = PanelTasks(self)
        self.table_view = RunsTable()
        self.notes_editor = RunNotesEditor()
        self.compare_view = CompareView()
        self.status = QLabel()
        self.exports = RunsExports(self, self.tasks, self.status.setText, self.selected_runs, lambda: self.runs,
                                   lambda: self.compared)
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    # ---- layout ---------------------------------------------------------------------------------------------------
    def _button(self, text: str, slot: Any, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _build(self) -> None:
        self.compare_button = self._button("Compare", self.compare_selected)
        self.open_button = self._button("Open", self.open_selected,
                                        "Put the run's best checkpoint (or its last) in the models list")
        self.csv_button = self._button("Export CSV...", self.exports.ask_csv)
        self.report_button = self._button("Report...", self.exports.ask_report,
                                          "One self-contained HTML file: curves, sample grids, metrics, settings")
        self.open_report_button = self._button("Open report", self.exports.open_report,
                                               "Open the newest report in the browser (or show where it is)")
        buttons = QHBoxLayout()
        for b in (self.compare_button, self.open_button, self.csv_button, self.report_button,
                  self.open_report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.status)
        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addWidget(self.table_view, 1)
        ul.addWidget(self.notes_editor)
        ul.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(self.compare_view)
        split.setSizes([300, 400])
        QVBoxLayout(self).addWidget(split)
        self.table_view.addFolderRequested.connect(self._ask_folder)
        self.table_view.selectionChanged.connect(self._on_selection)
        self.notes_editor.saveRequested.connect(self.save_notes)
        self.exports.reportWritten.connect(lambda _: self._update_buttons())
        self._update_buttons()

    # ---- the views' parts, by their old names ---------------------------------------------------------------------
    @property
    def runs(self) -> list[RunSummary]:
        return self.table_view.runs

    @property
    def table(self) -> QTableWidget:
        return self.table_view.table

    @property
    def filter(self) -> QLineEdit:
        return self.table_view.filter

    def selected_runs(self) -> list[RunSummary]:
        return self.table_view.selected_runs()

    def select_paths(self, paths: list[Path]) -> None:
        self.table_view.select_paths(paths)

    # ---- folders and the list -------------------------------------------------------------------------------------
    def folders(self) -> list[str]:
        from core.paths import runs_dir

        return list(dict.fromkeys([str(runs_dir()), *runs_tab_folders(self.settings),
                                   *experiment_folders(self.settings)]))

    def add_folder(self, folder: str) -> None:
        add_runs_tab_folder(self.settings, folder)
        self.refresh()

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of runs")
        if folder:
            self.add_folder(folder)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.refresh()
        self.timer.start()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def refresh(self) -> Worker | None:
        """Re-read the folders on a worker; while one read runs, a tick does nothing (the next one reads again)."""
        if self.tasks.busy("runs"):
            return None
        folders = self.folders()
        self.table_view.set_folders(folders)
        return self.tasks.start("runs", read_runs, folders, [r.path for r in self.compared], on_result=self._on_runs,
                                status=self.status.setText, error_dialog=False)

    def _on_runs(self, result: tuple[list[RunSummary], dict[Path, Any]]) -> None:
        runs, series = result
        self.table_view.set_runs(runs)
        live = sum(r.status == "running" for r in self.runs)
        self.status.setText(f"{len(self.runs)} runs" + (f", {live} running" if live else ""))
        if self.compared:   # live runs in the comparison: their new summaries and points
            by_path = {r.path: r for r in self.runs}
            self.compared = [by_path.get(r.path, r) for r in self.compared]
            self.compare_view.update_runs(self.compared)
            if series:
                self.compare_view.show_series(series)

    def _on_selection(self) -> None:
        selected = self.selected_runs()
        self.notes_editor.set_run(selected[0] if len(selected) == 1 else None)
        self._update_buttons()

    def _update_buttons(self) -> None:
        readable = [r for r in self.selected_runs() if r.status != "unreadable"]
        self.compare_button.setEnabled(len(readable) >= 1)
        self.open_button.setEnabled(len(readable) == 1)
        self.csv_button.setEnabled(bool(self.runs))
        self.report_button.setEnabled(len(readable) >= 1)
        self.open_report_button.setEnabled(self.exports.report_path is not None)

    # ---- tags and notes -------------------------------------------------------------------------------------------
    def save_notes(self, path: Path, notes: RunNotes) -> Worker:
        """Write the run's notes.json on a worker; the row shows them at once."""
        runs = [replace(r, tags=notes.tags, note=notes.note) if r.path == path else r for r in self.runs]
        self.table_view.set_runs(runs)
        return self.tasks.start("notes", write_notes, path, notes, status=self.status.setText,
                                on_result=lambda written: self.status.setText(f"saved {written.name} of {path.name}"))

    # ---- compare --------------------------------------------------------------------------------------------------
    def compare_selected(self) -> None:
        runs = [r for r in self.selected_runs() if r.status != "unreadable"]
        if not runs:
            return
        from core.runs.history import config_diff

        self.compared = runs
        self.compare_view.show_runs(runs, config_diff(runs))
        self.tasks.start("compare", read_compared, [r.path for r in runs], on_result=self._on_compared,
                         status=self.status.setText, error_dialog=False)

    def _on_compared(self, compared: Compared) -> None:
        self.compare_view.show_read(compared)

    # ---- open -----------------------------------------------------------------------------------------------------
    def open_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 1:
            return
        ckpts = Path(runs[0].path) / "checkpoints"
        path = next((p for p in (ckpts / "best.safetensors", ckpts / "last.safetensors") if p.is_file()), None)
        if path is None:
            show_error(self, f"{runs[0].name} has no checkpoint yet: it is saved at the end of its first epoch.")
            return
        from core.training.checkpoint import load_model

        name = runs[0].name     # loaded on a worker (a large model takes a while), then listed
        self.tasks.start("open", load_model, str(path), status=self.status.setText,
                         on_result=lambda loaded: self.state.add_model(loaded, source="run folder", name=name))

    def shutdown(self) -> None:
        self.timer.stop()
        self.tasks.shutdown()
