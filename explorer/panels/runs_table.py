"""The Runs tab's list: one row per run folder (its tags and note, what it trained, how far, its best validation), a
filter box (words, `tag:NAME` / `#NAME`), and a line that says how many damaged records were skipped in which runs.

A damaged record marks its run (a warning icon, the reason in the row and its tooltip); it never hides the run. The
list is filled from summaries read on a worker (`core.runs.history.find_runs`); this view only shows them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from core.files import printable
from core.runs.history import RunSummary
from core.runs.tags import matches

COLUMNS = ("name", "tags", "started", "kind", "dataset", "subset", "status", "epochs", "best val", "headline", "note",
           "reason")
_PATH = Qt.ItemDataRole.UserRole


class _NumberItem(QTableWidgetItem):
    """Sorts by a number, shows text."""

    def __init__(self, text: str, key: float) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.key < getattr(other, "key", float("-inf"))


def _started(seconds: float | None) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else ""
    except (OverflowError, OSError, ValueError):   # a time no calendar holds (a damaged record)
        return ""


def _cells(r: RunSummary) -> list[QTableWidgetItem]:
    epochs = f"{r.epochs_done}/{r.epochs_total}" if r.epochs_total else str(r.epochs_done)
    headline = ", ".join(f"{k} {v:.4g}" for k, v in list(r.headline.items())[:3])
    note = r.note.splitlines()[0] if r.note.strip() else ""
    texts = [r.name, ", ".join(r.tags), None, r.kind or "", r.dataset or "", r.subset, r.status, None, None, headline,
             note, r.reason]
    cells = [QTableWidgetItem(printable(t)[:300]) if t is not None else None for t in texts]
    cells[2] = _NumberItem(_started(r.started), r.started or 0.0)
    cells[7] = _NumberItem(epochs, r.epochs_done)
    cells[8] = _NumberItem("" if r.best_val is None else f"{r.best_val:.4g}",
                           r.best_val if r.best_val is not None else float("-inf"))
    cells[0].setData(_PATH, str(r.path))
    cells[0].setToolTip(str(r.path))
    if r.note:
        cells[10].setToolTip(r.note[:2000])
    if r.reason:
        cells[11].setToolTip(r.reason[:2000])
    return cells


def damage_text(runs: Sequence[RunSummary]) -> tuple[str, str]:
    """The line under the table ("12 records skipped in 2 runs; 1 run unreadable") and its tooltip (which runs,
    why); ("", "") when nothing was skipped."""
    damaged = [r for r in runs if r.damaged]
    unreadable = [r for r in runs if r.status == "unreadable"]
    parts = []
    if damaged:
        n = sum(r.damaged for r in damaged)
        parts.append(f"{n} record{'s' * (n != 1)} skipped in {len(damaged)} run{'s' * (len(damaged) != 1)}")
    if unreadable:
        parts.append(f"{len(unreadable)} run{'s' * (len(unreadable) != 1)} unreadable")
    if not parts:
        return "", ""
    shown = damaged + [r for r in unreadable if not r.damaged]
    tip = "\n".join(printable(f"{r.name}: {r.reason}")[:300] for r in shown[:20])
    more = f"\n... and {len(shown) - 20} more" if len(shown) > 20 else ""
    return "⚠ " + "; ".join(parts), tip + more


class RunsTable(QWidget):
    """The folders read, the filter, the table of runs and the damage line."""

    selectionChanged = Signal()
    addFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunSummary] = []
        self.folders_label = QLabel()
        self.folders_label.setWordWrap(True)
        add = QPushButton("Add folder...")
        add.clicked.connect(self.addFolderRequested)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: words, tag:NAME or #NAME")
        self.filter.setToolTip("Rows holding every word (name, dataset, status, note ...) and every tag:NAME "
                               "(a tag starting with NAME)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMinimumWidth(240)
        self.filter.textChanged.connect(self.apply_filter)
        top = QHBoxLayout()
        top.addWidget(self.folders_label, 1)
        top.addWidget(add)
        top.addWidget(self.filter)
        self.table = self._make_table()
        self.damage = QLabel()
        self.damage.setObjectName("runsDamage")
        self.damage.setStyleSheet("color: #b36b00;")
        self.damage.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.damage)

    def _make_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.verticalHeader().setVisible(False)
        table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        table.setSelectionMode(QTableWidget.SelectionMode.ExtendedSelection)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setWordWrap(False)          # one line a run; long texts are elided, whole in their tooltips
        table.setSortingEnabled(True)
        table.horizontalHeader().setStretchLastSection(True)
        table.itemSelectionChanged.connect(self.selectionChanged)
        return table

    def set_folders(self, folders: Sequence[str]) -> None:
        self.folders_label.setText("runs in: " + "; ".join(folders))

    def set_runs(self, runs: Sequence[RunSummary]) -> None:
        """Show these runs, keeping the selected ones selected (in one selection change). The same runs as shown (a
        refresh while nothing was written) change nothing: the table of 500 runs takes ~70 ms to fill."""
        if list(runs) == self.runs:
            return
        selected = {str(r.path) for r in self.selected_runs()}
        self.runs = list(runs)
        warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        self.table.setSortingEnabled(False)
        with signals_blocked(self.table):
            self.table.setRowCount(len(self.runs))
            for row, r in enumerate(self.runs):
                cells = _cells(r)
                if r.damaged or r.status == "unreadable":
                    cells[0].setIcon(warn)
                    cells[0].setToolTip(f"{r.path}\n{printable(r.reason)[:500]}")
                for col, item in enumerate(cells):
                    self.table.setItem(row, col, item)
            self.table.setSortingEnabled(True)
            self._select_rows_of(selected)
        self.table.resizeColumnsToContents()
        for col in (COLUMNS.index("note"), COLUMNS.index("headline"), COLUMNS.index("reason")):
            self.table.setColumnWidth(col, min(self.table.columnWidth(col), 260))
        self.apply_filter()
        text, tip = damage_text(self.runs)
        self.damage.setText(text)
        self.damage.setToolTip(tip)
        self.damage.setVisible(bool(text))
        self.selectionChanged.emit()

    def apply_filter(self) -> None:
        query = self.filter.text()
        by_path = {str(r.path): r for r in self.runs}
        for row in range(self.table.rowCount()):
            run = by_path.get(self.table.item(row, 0).data(_PATH))
            text = " ".join(self.table.item(row, c).text() for c in range(len(COLUMNS)))
            if run is not None:
                text += " " + run.note      # the whole note, not only its first line
            self.table.setRowHidden(row, not matches(text, run.tags if run is not None else (), query))

    def visible_runs(self) -> list[RunSummary]:
        by_path = {str(r.path): r for r in self.runs}
        return [by_path[self.table.item(row, 0).data(_PATH)] for row in range(self.table.rowCount())
                if not self.table.isRowHidden(row)]

    def selected_runs(self) -> list[RunSummary]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        by_path = {str(r.path): r for r in self.runs}
        out = []
        for row in rows:
            item = self.table.item(row, 0)
            run = by_path.get(item.data(_PATH)) if item is not None else None
            if run is not None:
                out.append(run)
        return out

    def select_paths(self, paths: Sequence[str | Path]) -> None:
        self._select_rows_of({str(p) for p in paths})

    def _select_rows_of(self, wanted: set[str]) -> None:
        """Select exactly the rows of these run folders, in one selection change. (Row by row, `selectRow` in
        ExtendedSelection mode replaces the selection each time: a refresh kept only the last run selected.)"""
        model = self.table.model()
        chosen = QItemSelection()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(_PATH) in wanted:
                chosen.select(model.index(row, 0), model.index(row, model.columnCount() - 1))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().select(chosen, flags)
