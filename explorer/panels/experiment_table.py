"""The live experiment table: one row per run (status, the settings the runs vary, the report's numbers, duration),
filled in as runs finish, and a scatter of a setting (or a number) against a number, one labelled point per
evaluated run. It knows nothing of where the runs train: the panel hands it `ExperimentSnapshot`s.

A run whose eval.json is there but could not be read is never "not evaluated": an "evaluation" column (shown while
some run has such a file) reads "damaged" with the warning icon, and the reader's one line is the tooltip of that
run's evaluation cells, as in the Runs tab's comparison."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from explorer.panels.experiment_rows import FINISHED, METRIC_COLUMNS, ExperimentSnapshot, RunRow
from explorer.widgets.live_plot import style_plot

DAMAGED = "damaged"     # the Runs tab's word for an evaluation file that could not be read
_STATUS_COLOURS = {"done": "#2e7d32", "trained": "#558b2f", "training": "#1565c0", "failed": "#c62828",
                   "stopped": "#ef6c00", "unfinished": "#ef6c00"}


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "—"
    return str(value)


def _short(key: str) -> str:
    return key.split(".", 1)[-1].replace("_", " ")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class ExperimentTable(QWidget):
    """The table above, the scatter below (its axes chosen in two combo boxes)."""

    snapshotShown = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.snapshot: ExperimentSnapshot | None = None
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.x_box, self.y_box = QComboBox(), QComboBox()
        for box in (self.x_box, self.y_box):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            box.currentIndexChanged.connect(lambda _: self._draw_scatter())
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(80)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getPlotItem().getViewBox().setDefaultPadding(0.12)    # room for the points' labels
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)   # beta 0.1..0.3 is not "100..300 (x0.001)"
        self._fg = style_plot(self.plot, "")              # the palette's colours: light and dark looks
        self.points = pg.ScatterPlotItem(size=10, brush=pg.mkBrush("#1f77b4"), pen=pg.mkPen(self._fg))
        self.plot.addItem(self.points)
        self._labels: list[pg.TextItem] = []
        self.hint = QLabel("No run has finished yet: each run appears here as it finishes.")
        axes = QHBoxLayout()
        axes.addWidget(QLabel("Scatter:"))
        axes.addWidget(self.y_box)
        axes.addWidget(QLabel("against"))
        axes.addWidget(self.x_box)
        axes.addStretch(1)
        lower = QWidget()
        lower_lay = QVBoxLayout(lower)
        lower_lay.setContentsMargins(0, 0, 0, 0)
        lower_lay.addLayout(axes)
        lower_lay.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setSizes([240, 300])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.hint)
        lay.addWidget(split, 1)

    # ---- the table ------------------------------------------------------------------------------------------------
    def columns(self) -> list[str]:
        keys = self.snapshot.setting_keys if self.snapshot is not None else ()
        metrics = self.snapshot.metric_columns if self.snapshot is not None else METRIC_COLUMNS
        return ["run", "status", *[_short(k) for k in keys], *(["evaluation"] if self._with_problems() else []),
                *[h for _, h in metrics], "duration"]

    def _with_problems(self) -> bool:
        """Whether some run's eval.json could not be read (the "evaluation" column is shown)."""
        return self.snapshot is not None and any(r.eval_problem for r in self.snapshot.rows)

    def show_snapshot(self, snapshot: ExperimentSnapshot) -> None:
        self.snapshot = snapshot
        headers = self.columns()
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(snapshot.rows))
        for i, row in enumerate(snapshot.rows):
            self._fill(i, row, snapshot.setting_keys, snapshot.metric_columns)
        done = snapshot.count(*FINISHED)
        self.hint.setText(f"{done} of {len(snapshot.rows)} runs finished" if snapshot.rows else
                          "No runs in this folder yet.")
        self._update_axes(snapshot)
        self._draw_scatter()
        self.snapshotShown.emit()

    def _fill(self, i: int, row: RunRow, keys: tuple[str, ...], metrics: tuple[tuple[str, str], ...]) -> None:
        evaluation = [DAMAGED if row.eval_problem else ""] if self._with_problems() else []
        cells = [row.name, row.status, *[_cell(row.settings.get(k)) for k in keys], *evaluation,
                 *[_cell(row.metrics.get(k)) for k, _ in metrics], _duration(row.duration_s)]
        first_eval = 2 + len(keys)       # the evaluation column (when shown), then the metrics
        warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for j, text in enumerate(cells):
            item = self.table.item(i, j)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(i, j, item)
            item.setText(text)       # an item is reused by the next snapshot: its tooltip and icon are set each time
            if j == 1 and row.status in _STATUS_COLOURS:
                item.setForeground(QColor(_STATUS_COLOURS[row.status]))
            in_eval = first_eval <= j < len(cells) - 1
            item.setToolTip(row.note if j == 1 else row.eval_problem if in_eval else "")
            damaged_cell = bool(evaluation) and j == first_eval and bool(row.eval_problem)
            item.setIcon(warn if damaged_cell else QIcon())   # marked as the runs table marks a damaged record

    def finished_rows(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.count(*FINISHED)

    def text(self, row: int, column: str) -> str:
        """The cell's text by column header (tests and exports read the table this way)."""
        j = self.columns().index(column)
        item = self.table.item(row, j)
        return "" if item is None else item.text()

    # ---- the scatter ----------------------------------------------------------------------------------------------
    def _update_axes(self, snapshot: ExperimentSnapshot) -> None:
        xs = [(_short(k), ("setting", k)) for k in snapshot.setting_keys] + \
             [(h, ("metric", k)) for k, h in snapshot.metric_columns]
        ys = [(h, ("metric", k)) for k, h in snapshot.metric_columns]
        for box, items, default in ((self.x_box, xs, 0), (self.y_box, ys, 2)):   # default: ELBO against a setting
            if [box.itemData(i) for i in range(box.count())] == [d for _, d in items]:
                continue
            current = box.currentData()
            with signals_blocked(box):
                box.clear()
                for text, data in items:
                    box.addItem(text, data)
                at = box.findData(current) if current is not None else -1
                box.setCurrentIndex(at if at >= 0 else min(default, box.count() - 1))

    def _value(self, row: RunRow, which: Any) -> float | None:
        if not which:
            return None
        kind, key = which
        value = row.settings.get(key) if kind == "setting" else row.metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)

    def scatter_points(self) -> list[tuple[str, float, float]]:
        """(run, x, y) of each run that has both numbers."""
        if self.snapshot is None:
            return []
        out = []
        for row in self.snapshot.rows:
            x, y = self._value(row, self.x_box.currentData()), self._value(row, self.y_box.currentData())
            if x is not None and y is not None:
                out.append((row.name, x, y))
        return out

    def _draw_scatter(self) -> None:
        """The points; a positive x spanning 20 times or more (beta 0.1 .. 4) on a log axis."""
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        points = self.scatter_points()
        xs = np.array([p[1] for p in points])
        log_x = len(xs) > 1 and xs.min() > 0 and xs.max() / xs.min() >= 20
        self.plot.getAxis("bottom").setLogMode(bool(log_x))    # tick labels 10^x; the points are placed at log10
        self.points.setData(np.log10(xs) if log_x else xs, np.array([p[2] for p in points]))
        self.plot.setLabel("bottom", self.x_box.currentText() + (" (log scale)" if log_x else ""))
        self.plot.setLabel("left", self.y_box.currentText())
        for name, x, y in points:
            label = pg.TextItem(name, anchor=(0, 1), color=self._fg)
            label.setPos(math.log10(x) if log_x else x, y)
            self.plot.addItem(label)
            self._labels.append(label)
