"""The compared runs' curves, with the dashboard's curve tools (one implementation: `LivePlot` and `CurveControls`):
TensorBoard's smoothing with the raw values faint behind, x as step / epoch / wall time (each run's from its own
start), a crosshair read-out of every run's value, a log toggle, a legend naming each run by the settings that differ.

Each run has a colour and a line style of its own, so two identical curves (the same run in two folders, a re-run
with the same seed) are both visible: the later one dashed over the earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from superqt.utils import signals_blocked

from core.runs.history import RunSummary, Series
from explorer.widgets.curve_tools import CurveControls
from explorer.widgets.live_plot import COLORS, LivePlot
from explorer.widgets.live_plot import Series as PlotSeries

STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)
HINT = "Select two or more runs above and press Compare: their curves appear here"


def fill_series(s: PlotSeries, run: Series, smoothing: float) -> None:
    """A plot series holding a run's whole curve at once (wall time counted from the run's first record)."""
    n = len(run.value)
    t = np.asarray(run.time, np.float64)
    finite = t[np.isfinite(t)]
    s.cols = {"step": np.asarray(run.step, np.float64), "epoch": np.asarray(run.epoch, np.float64),
              "time": t - (finite[0] if len(finite) else 0.0)}
    s.y = np.asarray(run.value, np.float64).copy()
    if s.smooth is not None:
        s.smooth = np.empty(n, np.float64)
    s.n = n
    s.set_smoothing(smoothing)       # (nothing for an unsmoothed series)


class ComparePlot(LivePlot):
    """A LivePlot of whole curves, one per compared run, each in its own colour and line style."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent=parent, hint=HINT)
        self.time_origin = 0.0            # each run's times are made relative to its own start (fill_series)
        self.items: dict[Path, pg.PlotDataItem] = {}

    def clear_runs(self) -> None:
        for name in list(self.series):
            self.remove_curve(name)
        self.items = {}
        self.redraw_now()

    def add_run(self, path: Path, label: str, index: int, run: Series, *, smooth: bool) -> None:
        name = label
        while name in self.series:        # two runs with the same label (the same name in two folders)
            name += " ′"
        color = COLORS[index % len(COLORS)]
        s = self.add_curve(name, smooth=smooth, color=color)
        fill_series(s, run, self.smoothing)
        main, _raw = self._curves[name]
        main.setPen(pg.mkPen(color, width=2, style=STYLES[index % len(STYLES)]))
        if not smooth:                    # validation points, one per epoch: dots, so a single one shows
            main.setSymbol("o")
            main.setSymbolSize(5)
            main.setSymbolBrush(color)
            main.setSymbolPen(None)
        self.items[path] = main

    def redraw_now(self) -> None:
        self._dirty = True
        self.redraw()


class CompareCurves(QWidget):
    """The series chooser and the curve tools above the compared runs' plot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunSummary] = []
        self.labels: dict[Path, str] = {}
        self.series: dict[Path, dict[str, Series]] = {}
        self.series_box = QComboBox()
        self.series_box.setMinimumContentsLength(12)
        self.series_box.currentTextChanged.connect(lambda _: self.draw())
        self.controls = CurveControls()
        self.controls.baseline_button.setVisible(False)   # the compared runs are each other's baselines
        self.plot = ComparePlot()
        self.controls.smoothingChanged.connect(self._on_smoothing)
        self.controls.xAxisChanged.connect(self._on_x_axis)
        row = QHBoxLayout()
        row.addWidget(QLabel("series"))
        row.addWidget(self.series_box)
        row.addWidget(self.controls, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.plot, 1)
        self.plot.redraw_now()

    @property
    def curves(self) -> dict[Path, pg.PlotDataItem]:
        """Each drawn run's curve (the smoothed one when smoothing is on)."""
        return self.plot.items

    def set_runs(self, runs: Sequence[RunSummary], labels: dict[Path, str]) -> None:
        self.runs, self.labels = list(runs), dict(labels)

    def set_series(self, series: dict[Path, dict[str, Series]]) -> None:
        self.series = {Path(p): s for p, s in series.items()}
        names = sorted({n for s in self.series.values() for n in s})
        current = self.series_box.currentText() or "loss"
        with signals_blocked(self.series_box):
            self.series_box.clear()
            self.series_box.addItems(names)
            self.series_box.setCurrentText(current if current in names else (names[0] if names else ""))
        self.draw()

    def draw(self) -> None:
        self.plot.clear_runs()
        name = self.series_box.currentText()
        for i, run in enumerate(self.runs):
            s = self.series.get(Path(run.path), {}).get(name)
            if s is not None and len(s.value):
                self.plot.add_run(Path(run.path), self.labels.get(Path(run.path), run.name), i, s,
                                  smooth=not name.startswith("val "))
        self.plot.getPlotItem().setLabel("left", name)
        self.plot.set_x_axis(self.controls.x_axis)
        self.plot.redraw_now()

    def _on_smoothing(self, weight: float) -> None:
        self.plot.set_smoothing(weight)
        self.plot.redraw_now()

    def _on_x_axis(self, axis: str) -> None:
        self.plot.set_x_axis(axis)
        self.plot.redraw_now()
