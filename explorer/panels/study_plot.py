"""The search's progress as a plot: each complete trial's value against its number, the best so far as a step line
(one objective), or the two objectives against each other with the Pareto front joined (two)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from explorer.panels.study_rows import StudySnapshot
from explorer.widgets.live_plot import style_plot


class StudyPlot(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("bottom", "left"):
            self.getAxis(axis).enableAutoSIPrefix(False)
        fg = style_plot(self, "")
        self.trials = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(150, 150, 150, 200), pen=pg.mkPen(None))
        self.best = pg.PlotDataItem(pen=pg.mkPen("#1f77b4", width=2), symbol="o", symbolSize=8,
                                    symbolBrush="#1f77b4", symbolPen=pg.mkPen(fg), stepMode=None)
        self.addItem(self.trials)
        self.addItem(self.best)
        self.best_line: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    def show_snapshot(self, snapshot: StudySnapshot) -> None:
        done = [r for r in snapshot.rows if r.state == "complete" and len(r.values) == len(snapshot.objectives)]
        if len(snapshot.objectives) == 2:
            front = [r for r in done if r.number in snapshot.best]
            front.sort(key=lambda r: r.values[0])
            self.trials.setData([r.values[0] for r in done], [r.values[1] for r in done])
            self.best_line = (np.array([r.values[0] for r in front]), np.array([r.values[1] for r in front]))
            self.setLabel("bottom", snapshot.objectives[0])
            self.setLabel("left", f"{snapshot.objectives[1]} (the Pareto front joined)")
        else:
            numbers = np.array([r.number for r in done], dtype=float)
            values = np.array([r.values[0] for r in done], dtype=float)
            sign = 1.0 if snapshot.directions[:1] != ("minimize",) else -1.0
            best = sign * np.maximum.accumulate(sign * values) if len(values) else values
            self.trials.setData(numbers, values)
            self.best_line = (numbers, best)
            self.setLabel("bottom", "trial")
            self.setLabel("left", f"{snapshot.objectives[0]}: each trial, and the best so far")
        self.best.setData(*self.best_line)
