"""The models list: every model the app holds, in one place (napari's layer list is the pattern).

One row per `ModelEntry` of `AppState.models`: its name (editable: double-click to rename), kind, dataset, epoch,
status and headline metric, and a mark on the VAE and the diffusion model the panels show. Clicking a row shows that
model in every panel. "Save as..." writes the selected model as a checkpoint, "Close" drops it from the list (the
model shown before it is shown again, and "Undo" below the list puts it back), and "Follow training" shows a new
training run as soon as it has a model (otherwise a run only adds its row).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from explorer.state import AppState, ModelEntry
from explorer.widgets.flow_toolbar import flow_toolbar

COLUMNS = ("shown", "name", "kind", "dataset", "epoch", "status", "metric")


class ModelsList(QWidget):
    def __init__(self, state: AppState, save_as: Callable[[ModelEntry], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._save_as = save_as
        self._filling = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(["", "name", "kind", "dataset", "epoch", "status", "metric"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.DoubleClicked | QTableWidget.EditTrigger.EditKeyPressed)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._on_selected)
        self.table.itemChanged.connect(self._on_edited)
        self.follow = QCheckBox("Follow training")
        self.follow.setToolTip("Show a new training run in the panels as soon as it has a model (otherwise a run "
                               "only adds its row here; click the row to look at it)")
        self.follow.toggled.connect(lambda on: setattr(state, "follow_training", on))
        self.save_button = QPushButton("Save as...")
        self.save_button.clicked.connect(self._save_selected)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self._close_selected)
        # the buttons wrap under the box when the dock is narrow (a 1024-px screen): the dock's minimum width is the
        # widest of them, not their sum
        buttons = flow_toolbar([[self.follow], [self.save_button, self.close_button]])
        self.undo_bar = QWidget()      # after Close: what was closed, and Undo (until the next close or undo)
        undo = QHBoxLayout(self.undo_bar)
        undo.setContentsMargins(0, 0, 0, 0)
        self.undo_label = QLabel("")
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Put the closed model back in the list (and show it again if it was shown)")
        self.undo_button.clicked.connect(self.undo_close)
        undo.addWidget(self.undo_label, 1)
        undo.addWidget(self.undo_button)
        self.undo_bar.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addWidget(buttons)
        lay.addWidget(self.undo_bar)
        state.modelsChanged.connect(self.refresh)
        state.vaeChanged.connect(self.refresh)
        state.diffusionChanged.connect(self.refresh)
        self.refresh()

    # ---- view ----------------------------------------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        return list(self.state.models)

    def row_of(self, entry: ModelEntry) -> int:
        return self.state.models.index(entry)

    def refresh(self) -> None:
        """Rebuild the rows from the state (a few rows: cheaper to redo than to diff)."""
        self._filling = True
        try:
            models = self.state.models
            self.table.setRowCount(len(models))
            for row, e in enumerate(models):
                shown = self.state.shown.get(e.kind) is e
                values = ("●" if shown else "", e.name, e.kind, e.loaded.meta.name, str(e.loaded.epoch),
                          e.status or e.source, e.headline)
                for col, text in enumerate(values):
                    item = self.table.item(row, col)
                    if item is None:
                        item = QTableWidgetItem()
                        self.table.setItem(row, col, item)
                    item.setText(text)
                    flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                    if COLUMNS[col] == "name":
                        flags |= Qt.ItemFlag.ItemIsEditable
                    item.setFlags(flags)
                    item.setToolTip(str(e.loaded.path) if e.loaded.path else f"{e.source}: {e.describe()}")
            self._highlight_shown()
            self.table.resizeColumnsToContents()
        finally:
            self._filling = False
        self._update_buttons()

    def _highlight_shown(self) -> None:
        """The highlighted row is a model the panels show: when another of its kind is shown (follow training, a
        closed entry), the highlight moves to that one instead of staying on a model no panel shows."""
        current = self._selected()
        if current is None or self.state.shown.get(current.kind) is current:
            return
        now = self.state.shown.get(current.kind)
        if now is None or now not in self.state.models:
            self.table.clearSelection()
        else:
            self.table.selectRow(self.row_of(now))

    def _selected(self) -> ModelEntry | None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self.state.models[row] if row < len(self.state.models) else None

    def _update_buttons(self) -> None:
        entry = self._selected()
        self.save_button.setEnabled(entry is not None)
        self.close_button.setEnabled(entry is not None)

    # ---- actions -------------------------------------------------------------------------------------------------
    def select(self, entry: ModelEntry) -> None:
        """Select `entry`'s row (as a click does): the panels show it."""
        self.table.selectRow(self.row_of(entry))

    def _on_selected(self) -> None:
        self._update_buttons()
        entry = self._selected()
        if entry is not None and not self._filling:
            self.state.show(entry)

    def _on_edited(self, item: QTableWidgetItem) -> None:
        if self._filling or COLUMNS[item.column()] != "name":
            return
        entry = self.state.models[item.row()]
        if item.text() != entry.name:
            self.state.rename(entry, item.text())

    def _save_selected(self) -> None:
        entry = self._selected()
        if entry is not None:
            self._save_as(entry)

    def _close_selected(self) -> None:
        entry = self._selected()
        if entry is None:
            return
        self.state.close(entry)
        self.undo_label.setText(f"Closed {entry.name}.")
        self.undo_label.setToolTip(entry.describe())
        self.undo_bar.show()

    def undo_close(self) -> None:
        entry = self.state.undo_close()
        self.undo_bar.hide()
        if entry is not None and self.state.shown.get(entry.kind) is entry:
            self.select(entry)      # the highlight follows the model shown again
