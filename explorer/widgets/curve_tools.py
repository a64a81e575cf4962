"""TensorBoard's curve tools for `LivePlot`: the controls above a set of plots, and the parts a plot adds to itself.

- `CurveControls`: a smoothing slider (TensorBoard's debiased EMA, `core.runs.smoothing`; the raw curve stays faint
  behind the smoothed one), the x axis (step, epoch or wall time since the run started) and a baseline picker
  (another run drawn dashed under the live curves). It only emits what the user chose; the owner applies it to its
  plots.
- `LogToggle`: a small "log" button in a plot's corner (each plot has its own log axis).
- `PlotHint`: a line in the middle of an empty plot that says what will appear there and how.
- `RightAxis`: a second y axis on the right of a plot (e.g. KL beside reconstruction: tens of nats against a few),
  a ViewBox that shares the plot's x axis.

Pure widgets: no state, no panel imports.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QToolButton,
    QWidget,
)

AXES = ("step", "epoch", "time")
AXIS_LABELS = {"step": "step", "epoch": "epoch", "time": "wall time (s since start)"}
DEFAULT_SMOOTHING = 0.6     # TensorBoard's default
SLIDER_MAX = 99             # 0.00 .. 0.99 in steps of 0.01
NO_DATA_HINT = "No data yet: start a run in Train, or follow a run folder"


class CurveControls(QWidget):
    smoothingChanged = Signal(float)     # TensorBoard's smoothing weight, 0 .. 0.99
    xAxisChanged = Signal(str)           # one of AXES
    baselineRequested = Signal()         # "Baseline..." clicked: the owner asks which run
    baselineCleared = Signal()

    def __init__(self, parent: QWidget | None = None, *, smoothing: float = DEFAULT_SMOOTHING) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_MAX)
        self.slider.setValue(round(smoothing * 100))
        self.slider.setFixedWidth(110)
        self.slider.setToolTip("Smoothing of the step curves (TensorBoard's debiased moving average; the raw values "
                               "are drawn faintly behind). 0: none.")
        self.value_label = QLabel(f"{smoothing:.2f}")
        self.x_box = QComboBox()
        self.x_box.addItems(["step", "epoch", "wall time"])
        self.x_box.setToolTip("What the plots' x axis counts")
        self.baseline_button = QPushButton("Baseline...")
        self.baseline_button.setToolTip("Draw an earlier run's curves (dashed) under the live ones")
        self.clear_baseline_button = QToolButton()
        self.clear_baseline_button.setText("×")
        self.clear_baseline_button.setToolTip("Remove the baseline")
        self.clear_baseline_button.setVisible(False)
        lay.addWidget(QLabel("Smoothing"))
        lay.addWidget(self.slider)
        lay.addWidget(self.value_label)
        lay.addWidget(QLabel("x"))
        lay.addWidget(self.x_box)
        lay.addWidget(self.baseline_button)
        lay.addWidget(self.clear_baseline_button)
        lay.addStretch(1)
        self.slider.valueChanged.connect(self._on_slider)
        self.x_box.currentIndexChanged.connect(lambda i: self.xAxisChanged.emit(AXES[i]))
        self.baseline_button.clicked.connect(self.baselineRequested)
        self.clear_baseline_button.clicked.connect(self.baselineCleared)

    @property
    def smoothing(self) -> float:
        return self.slider.value() / 100

    @property
    def x_axis(self) -> str:
        return AXES[self.x_box.currentIndex()]

    def set_x_axis(self, axis: str) -> None:
        self.x_box.setCurrentIndex(AXES.index(axis))

    def set_baseline_name(self, name: str | None) -> None:
        """Show which run is the baseline (None: none)."""
        self.baseline_button.setText(f"Baseline: {name[:24]}" if name else "Baseline...")
        self.clear_baseline_button.setVisible(bool(name))

    def _on_slider(self, value: int) -> None:
        self.value_label.setText(f"{value / 100:.2f}")
        self.smoothingChanged.emit(value / 100)


class LogToggle(QToolButton):
    """A checkable "log" button in the top-left corner of its plot."""

    def __init__(self, plot: QWidget) -> None:
        super().__init__(plot)
        self.setText("log")
        self.setCheckable(True)
        self.setAutoRaise(True)
        self.setToolTip("Logarithmic y axis on this plot")
        self.setStyleSheet("QToolButton { font-size: 9px; padding: 0 2px; } "
                           "QToolButton:checked { font-weight: bold; }")
        self.move(2, 2)


class PlotHint(QLabel):
    """Centred grey text over an empty plot; the plot shows or hides it (`show_if`)."""

    def __init__(self, plot: QWidget, text: str = NO_DATA_HINT) -> None:
        super().__init__(text, plot)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet("color: gray; background: transparent;")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def fit(self) -> None:
        parent = self.parentWidget()
        self.setGeometry(12, 0, max(10, parent.width() - 24), parent.height())

    def show_if(self, empty: bool) -> None:
        if empty != self.isVisible():
            self.setVisible(empty)
        if empty:
            self.fit()


class RightAxis:
    """A y axis on the right of `item` (a PlotItem) with its own ViewBox `vb`, sharing the plot's x axis."""

    def __init__(self, item: pg.PlotItem, vb: pg.ViewBox, *, label: str, color: str) -> None:
        self.item, self.vb = item, vb
        self.curves: list[pg.PlotDataItem] = []
        item.showAxis("right")
        item.scene().addItem(vb)
        self.axis = item.getAxis("right")
        self.axis.linkToView(vb)
        self.axis.setLabel(label, color=color)
        self.axis.setGrid(False)      # the left axis draws the grid; a second one would cross it
        self.axis.setWidth(52)        # room for its labels from the start (a curve added later never got it)
        self.axis.setPen(pg.mkPen(color))
        self.axis.setTextPen(pg.mkPen(color))
        vb.setXLink(item.vb)
        item.vb.sigResized.connect(self._sync)
        self._sync()

    def add(self, curve: pg.PlotDataItem) -> None:
        self.vb.addItem(curve)
        self.curves.append(curve)

    def remove(self, curve: pg.PlotDataItem) -> None:
        if curve in self.curves:
            self.curves.remove(curve)
            self.vb.removeItem(curve)

    def set_log_y(self, on: bool) -> None:
        for curve in self.curves:
            curve.setLogMode(False, on)
        self.axis.setLogMode(False, on)
        self.vb.enableAutoRange(y=True)

    def _sync(self) -> None:
        self.vb.setGeometry(self.item.vb.sceneBoundingRect())
        self.vb.linkedViewChanged(self.item.vb, self.vb.XAxis)
