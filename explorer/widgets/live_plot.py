"""Live line plots for a training dashboard: preallocated buffers filled by event slots, redrawn by a timer.

`Series` is a growable set of float64 columns (doubling, so appends are amortised O(1) and nothing is reallocated at
plot rate). `LivePlot` is a pyqtgraph PlotWidget with named curves; `append` only writes to buffers and marks the plot
dirty; `redraw()` (called by the owner's ~30 Hz timer) pushes the buffers with `setData` only when something changed.
The curve tools (`curve_tools.py`): TensorBoard's smoothing with the raw values drawn faintly behind, the x axis as
step, epoch or wall time, a crosshair with each curve's value, a log toggle per plot, a right axis, a baseline run
drawn dashed under the live curves, a hint while the plot is empty.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QWidget

from core.runs.smoothing import RunningEma, ema_smooth
from explorer.widgets.curve_tools import (
    AXES,
    AXIS_LABELS,
    DEFAULT_SMOOTHING,
    NO_DATA_HINT,
    LogToggle,
    PlotHint,
    RightAxis,
)

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


LEGEND_OFFSET = (-4, 4)   # the legend's top-right corner from the plot area's (px)
PADDING = 0.03    # margin around the data when the view is re-ranged, as a fraction of the data's span
HEADROOM = 0.25   # extra room on a side the data grew past, so that a growing curve re-ranges only now and then


def sticky_range(current: tuple[float, float], data: tuple[float, float], *,
                 headroom: float = HEADROOM) -> tuple[float, float]:
    """The view range to show for auto-ranged data spanning `data`, given the range shown now.

    The current range is kept while it holds the data and is at most twice as wide as a re-fit would make it.
    Otherwise the view is re-fitted around the data with PADDING, plus HEADROOM on each side the data went past (none
    when the view had become too wide). A live loss curve thus re-ranges its axes a few times per run instead of on
    every redraw.
    """
    lo, hi = current
    d_lo, d_hi = data
    span = d_hi - d_lo
    if span <= 0:   # flat data (e.g. a constant learning rate): a window of 10% of the value, or 1, around it
        span = abs(d_lo) * 0.1 or 1.0
        d_lo, d_hi = d_lo - span / 2, d_hi + span / 2
    widest = 2.0 * span * (1 + 2 * PADDING + headroom)
    if lo <= d_lo and d_hi <= hi and hi - lo <= widest:
        return lo, hi
    too_wide = hi - lo > widest
    new_lo = d_lo - span * (PADDING + (headroom if d_lo < lo and not too_wide else 0.0))
    new_hi = d_hi + span * (PADDING + (headroom if d_hi > hi and not too_wide else 0.0))
    return new_lo, new_hi


class StickyViewBox(pg.ViewBox):
    """A ViewBox whose auto-range moves in steps (`sticky_range`) rather than following the data on every update.

    Why: each change of range re-renders both axes, and with the grid on an axis is painted over the whole plot, so
    a dashboard that re-ranged on every redraw spent most of its GUI-thread time drawing tick labels (measured with
    cProfile: QPicture.play was 85% of it). User zoom/pan and the 'A' button behave as in pyqtgraph.
    """

    def __init__(self, *args, headroom: float = HEADROOM, **kwargs) -> None:
        self._auto_ranging = False
        self._refit = False
        self.headroom = headroom
        super().__init__(*args, defaultPadding=0.0, **kwargs)   # sticky_range adds the padding

    def refit(self) -> None:
        """Auto-range, fitted to the data at the next update instead of kept while it holds them."""
        self._refit = True
        self.enableAutoRange()

    def updateAutoRange(self) -> None:
        self._auto_ranging = True
        try:
            super().updateAutoRange()
        finally:
            self._auto_ranging = False

    def setRange(self, rect=None, xRange=None, yRange=None, *args, **kwargs):
        if self._auto_ranging and rect is None:
            (x0, x1), (y0, y1) = self.viewRange()
            if self._refit:      # compared with no range at all: fitted with the padding alone
                self._refit = False
                (x0, x1), (y0, y1) = (math.nan, math.nan), (math.nan, math.nan)
            if xRange is not None:
                xRange = sticky_range((x0, x1), tuple(xRange), headroom=self.headroom)
                if xRange == (x0, x1):
                    xRange = None
            if yRange is not None:
                yRange = sticky_range((y0, y1), tuple(yRange), headroom=self.headroom)
                if yRange == (y0, y1):
                    yRange = None
            if xRange is None and yRange is None:
                return
        return super().setRange(rect, xRange, yRange, *args, **kwargs)


def style_plot(pw: pg.PlotWidget, title: str | None) -> QColor:
    """Background, axes and title (None: no title row) in the widget palette's colours (so the light and dark looks
    both read well); returns the text colour.

    Axes are cached as pixmaps: a curve update repaints the plot area, which (grid lines being part of the axes)
    replays both axes; from the cache that is a blit instead of re-drawing every tick label.
    """
    pal = pw.palette()
    bg, fg = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
    pw.setBackground(bg)
    item = pw.getPlotItem()
    for axis in ("left", "bottom"):
        ax = item.getAxis(axis)
        ax.setPen(pg.mkPen(fg))
        ax.setTextPen(pg.mkPen(fg))
        ax.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    item.setTitle(title, color=fg.name())
    return fg



def style_legend(pw: pg.PlotWidget, legend: pg.LegendItem, fg: QColor) -> None:
    """A legend over the canvas in the palette's colours: the base colour, slightly see-through, and `fg` text."""
    base = pw.palette().color(QPalette.ColorRole.Base)
    legend.setBrush(base.red(), base.green(), base.blue(), 200)
    legend.setLabelTextColor(fg)
    for _, label in legend.items:
        label.setText(label.text)                  # pyqtgraph applies a label's colour when its text is set

class FollowsPalette:
    """Mixed into a plot widget (before the pyqtgraph class): `apply_palette()` runs again whenever the widget's or
    the application's palette changes (View > Light / Dark look). The widget sets `_ready = True` last in its
    `__init__`: pyqtgraph's constructor changes the palette before the widget's attributes exist."""

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if self.__dict__.get("_ready") and event.type() in (event.Type.PaletteChange,
                                                             event.Type.ApplicationPaletteChange):
            self.apply_palette()

    def apply_palette(self) -> None:
        raise NotImplementedError


class Series:
    """A growable curve: y, its smoothed copy, and the x of each axis (step, epoch, wall time; NaN where unknown).

    `native` is the axis the owner's `append(x, y)` gives; the others come as keywords. `axis` is the one `xs` shows
    (time relative to `origin`). Smoothing is TensorBoard's debiased EMA: each new point costs O(1), a new weight
    re-smooths the whole series at once."""

    def __init__(self, capacity: int = 1024, *, smoothing: float | None = None, native: str = "step") -> None:
        self.native = self.axis = native
        self.origin = 0.0
        self.cols = {a: np.full(capacity, np.nan) for a in AXES}
        self.y = np.empty(capacity, np.float64)
        self.smooth = np.empty(capacity, np.float64) if smoothing is not None else None
        self._ema = RunningEma(smoothing) if smoothing is not None else None
        self.n = 0

    def append(self, x: float, y: float, **axes: float | None) -> None:
        if self.n == len(self.y):
            grow = len(self.y)
            self.y = np.concatenate([self.y, np.empty(grow)])
            self.cols = {a: np.concatenate([c, np.full(grow, np.nan)]) for a, c in self.cols.items()}
            if self.smooth is not None:
                self.smooth = np.concatenate([self.smooth, np.empty(grow)])
        for a, c in self.cols.items():
            value = x if a == self.native else axes.get(a)
            c[self.n] = np.nan if value is None else value
        self.y[self.n] = y
        if self.smooth is not None:
            self.smooth[self.n] = self._ema(float(y))
        self.n += 1

    def set_smoothing(self, weight: float) -> None:
        if self.smooth is None:
            return
        self._ema = RunningEma(weight)
        if self.n:
            self.smooth[: self.n] = ema_smooth(self.ys, weight)
            self._ema.resume(self.ys, self.smooth[: self.n])

    def clear(self) -> None:
        self.n = 0
        if self._ema is not None:
            self._ema.reset()

    @property
    def xs(self) -> np.ndarray:
        c = self.cols[self.axis][: self.n]
        return c - self.origin if self.axis == "time" else c

    @property
    def ys(self) -> np.ndarray:
        return self.y[: self.n]

    @property
    def smoothed(self) -> np.ndarray:
        return self.smooth[: self.n] if self.smooth is not None else self.ys

    @property
    def first_time(self) -> float | None:
        t = self.cols["time"][: self.n]
        t = t[np.isfinite(t)]
        return float(t[0]) if len(t) else None


class LivePlot(FollowsPalette, pg.PlotWidget):
    """Named live curves (and dashed baseline curves of another run under them) with TensorBoard's curve tools:
    smoothing, x axis, crosshair read-out, a log toggle of its own, curves on a right axis, a hint while empty."""

    def __init__(self, title: str, *, x_label: str = "step", parent: QWidget | None = None,
                 hint: str = NO_DATA_HINT) -> None:
        super().__init__(parent=parent, viewBox=StickyViewBox())
        self.title = title
        self.native_axis = self.x_axis = x_label if x_label in AXES else "step"
        self.smoothing = DEFAULT_SMOOTHING
        self.time_origin: float | None = None       # wall time 0 (the run's start); else the first point's time
        self.series: dict[str, Series] = {}
        self.baselines: dict[str, Series] = {}       # by the live curve's name they go under
        self.baseline_name = ""
        self._curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem | None]] = {}
        self._baseline_items: dict[str, pg.PlotDataItem] = {}
        self._colors: dict[str, str] = {}
        self._right: RightAxis | None = None
        self._on_right: set[str] = set()
        self._dirty = self._refit = False
        item = self.getPlotItem()
        item.setTitle(title)
        item.setLabel("bottom", AXIS_LABELS[self.x_axis])
        item.showGrid(x=True, y=True, alpha=0.2)
        # Downsampling keeps long runs cheap to draw. No clip-to-view: with it, pyqtgraph auto-ranges over the clipped
        # points only, so after a zoom the 'A' button could not bring the whole run back into view.
        item.setDownsampling(auto=True, mode="peak")
        # Tight margins: in a dashboard cell (a 1024 px window) the plot area is ~115 px wide and pyqtgraph's default
        # 9 px margins made a two-entry legend wider than it, over both axes.
        self._legend = item.addLegend(offset=LEGEND_OFFSET, brush=pg.mkBrush(128, 128, 128, 50), horSpacing=2)
        self._legend.layout.setContentsMargins(3, 1, 3, 1)
        item.vb.sigResized.connect(self._fit_legend)
        self._vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((128, 128, 128, 150), width=1))
        self._vline.setVisible(False)
        self.addItem(self._vline, ignoreBounds=True)
        self._readout = pg.TextItem(anchor=(0, 0))
        self._readout.setVisible(False)
        self.addItem(self._readout, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.log_toggle = LogToggle(self)
        self.log_toggle.toggled.connect(self.set_log_y)
        self.hint = PlotHint(self, hint)
        self.setMinimumSize(110, 110)
        self._ready = True
        self.apply_palette()

    # ---- curves -----------------------------------------------------------------------------------------------------
    def add_curve(self, name: str, *, ema: float | None = None, smooth: bool = False, color: str | None = None,
                  right_axis: bool = False) -> Series:
        """A named curve; smoothed (`smooth`, or any `ema`) it is drawn over its raw values, faint; `right_axis` puts
        it on an axis of its own on the right."""
        smooth = smooth or ema is not None
        color = color or COLORS[len(self._curves) % len(COLORS)]
        series = Series(smoothing=self.smoothing if smooth else None, native=self.native_axis)
        raw = None
        if smooth:
            faint = QColor(color)
            faint.setAlpha(90)
            raw = pg.PlotDataItem([], [], pen=pg.mkPen(faint, width=1))
        # Epoch curves get dots: a single epoch (a line needs two points) would otherwise draw nothing.
        dots = not smooth and self.native_axis == "epoch"
        main = pg.PlotDataItem([], [], pen=pg.mkPen(color, width=2), symbol="o" if dots else None, symbolSize=5,
                               symbolBrush=color, symbolPen=None)
        if right_axis and self._right is None:
            self._right = RightAxis(self.getPlotItem(), StickyViewBox(), label=name, color=color)
            # clear of the right axis's ticks, which reach into the plot area
            inward = max(0, -self._right.axis.style["tickLength"])
            self._legend.setOffset((LEGEND_OFFSET[0] - inward, LEGEND_OFFSET[1]))
        for it in (raw, main):
            if it is not None:
                self._right.add(it) if right_axis else self.addItem(it)
                it.setLogMode(False, self.log_toggle.isChecked())
        if right_axis:
            self._on_right.add(name)
        # A right-axis curve is named by that axis's label, in the curve's colour: no " (right)" that widens the legend
        self._legend.addItem(main, name)
        self.series[name], self._curves[name], self._colors[name] = series, (main, raw), color
        self._sync_series()
        self._fit_legend()
        return series

    def _fit_legend(self) -> None:
        """Shown only while it fits in the plot area (beside the right axis's ticks): a legend wider than a narrow
        plot covered its axes and curves; the axes' labels and the hover read-out still name the curves."""
        legend, view = self._legend, self.getPlotItem().vb
        room = view.width() - abs(legend.opts["offset"][0]) - 2
        legend.setVisible(legend.boundingRect().width() <= room)

    def remove_curve(self, name: str) -> None:
        """Take a curve (its legend entry, its baseline) off the plot; nothing happens for an unknown name."""
        if name not in self._curves:
            return
        self._remove_baseline(name)
        main, raw = self._curves.pop(name)
        del self.series[name]
        for it in (main, raw):
            if it is not None:
                self._right.remove(it) if name in self._on_right else self.removeItem(it)
        self._legend.removeItem(main)
        self._on_right.discard(name)
        self._fit_legend()

    def append(self, name: str, x: float, y: float, **axes: float | None) -> None:
        """A point of curve `name` at x on the plot's own axis (others, e.g. `time=`, as keywords)."""
        if name not in self.series:
            self.add_curve(name)
        if self.time_origin is None and axes.get("time") is not None:
            self.time_origin = float(axes["time"])
            self._sync_series()
        self.series[name].append(x, y, **axes)
        self._dirty = True

    def clear_data(self) -> None:
        for s in self.series.values():
            s.clear()
        self.time_origin = None
        self._dirty = True

    # ---- baseline ---------------------------------------------------------------------------------------------------
    def set_baseline(self, name: str, label: str, *, step: np.ndarray, epoch: np.ndarray, time: np.ndarray,
                     value: np.ndarray) -> None:
        """Another run's values of curve `name`, dashed under it (in its colour), named `label` in the legend."""
        if name not in self.series:
            return
        self._remove_baseline(name)
        s = Series(len(value) or 1, smoothing=self.smoothing if self.series[name].smooth is not None else None,
                   native="step")
        for i in range(len(value)):
            s.append(step[i], value[i], epoch=epoch[i], time=time[i])
        color = QColor(self._colors[name])
        color.setAlpha(170)
        item = pg.PlotDataItem([], [], pen=pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine))
        item.setZValue(-1)
        item.setLogMode(False, self.log_toggle.isChecked())
        self._right.add(item) if name in self._on_right else self.addItem(item)
        self._legend.addItem(item, f"{name} · {label}")
        self.baselines[name], self._baseline_items[name], self.baseline_name = s, item, label
        self._sync_series()
        self._fit_legend()

    def clear_baselines(self) -> None:
        for name in list(self.baselines):
            self._remove_baseline(name)
        self.baseline_name = ""
        self._dirty = True

    def _remove_baseline(self, name: str) -> None:
        item = self._baseline_items.pop(name, None)
        self.baselines.pop(name, None)
        if item is not None:
            self._right.remove(item) if name in self._on_right else self.removeItem(item)
            self._legend.removeItem(item)
            self._fit_legend()

    # ---- tools ------------------------------------------------------------------------------------------------------
    def set_smoothing(self, weight: float) -> None:
        self.smoothing = weight
        for s in (*self.series.values(), *self.baselines.values()):
            s.set_smoothing(weight)
        self._dirty = True

    def set_x_axis(self, axis: str) -> None:
        self.x_axis = axis
        self._sync_series()
        self.getPlotItem().setLabel("bottom", AXIS_LABELS[axis])
        self._refit = True    # the old range means nothing on the new axis: fitted anew at the next redraw
        self._dirty = True

    def _sync_series(self) -> None:
        origin = self.time_origin
        if origin is None:
            origin = next((t for s in self.series.values() if (t := s.first_time) is not None), 0.0)
        for s in self.series.values():
            s.axis, s.origin = self.x_axis, origin
        for s in self.baselines.values():     # a baseline's wall time counts from its own start
            s.axis, s.origin = self.x_axis, s.first_time or 0.0
        self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        for name, (main, raw) in self._curves.items():
            s = self.series[name]
            if raw is not None:
                raw.setData(s.xs, s.ys, connect="finite")
            main.setData(s.xs, s.smoothed, connect="finite")
        for name, item in self._baseline_items.items():
            s = self.baselines[name]
            item.setData(s.xs, s.smoothed, connect="finite")
        if self._refit:
            self._refit = False
            self.getPlotItem().getViewBox().refit()
            if self._right is not None:
                self._right.vb.refit()
        self.hint.show_if(not any(s.n for s in (*self.series.values(), *self.baselines.values())))

    def set_log_y(self, on: bool) -> None:
        if self.log_toggle.isChecked() != on:
            self.log_toggle.setChecked(on)      # (toggled comes back here)
            return
        self.getPlotItem().setLogMode(y=on)
        if self._right is not None:
            self._right.set_log_y(on)

    def apply_palette(self) -> None:
        fg = style_plot(self, self.title)
        self._readout.setColor(fg)
        self._legend.setLabelTextColor(fg)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.__dict__.get("_ready"):
            self.hint.fit()

    # ---- hover read-out ---------------------------------------------------------------------------------------------
    def _on_mouse_moved(self, pos: QPointF) -> None:
        vb = self.getPlotItem().getViewBox()
        if not self.sceneBoundingRect().contains(pos) or not vb.sceneBoundingRect().contains(pos):
            self._vline.setVisible(False)
            self._readout.setVisible(False)
            return
        x = vb.mapSceneToView(pos).x()
        if self.getPlotItem().ctrl.logXCheck.isChecked():
            x = 10 ** x
        lines, anchor_x = self.readout_at(x)
        if not lines:
            return
        self._vline.setPos(anchor_x)
        self._vline.setVisible(True)
        self._readout.setText("\n".join(lines))
        (_, _), (y0, y1) = vb.viewRange()
        self._readout.setPos(vb.mapSceneToView(pos).x(), y1)
        self._readout.setVisible(True)

    def readout_at(self, x: float) -> tuple[list[str], float]:
        """Text lines for the points nearest to x on each curve (smoothed, and raw when smoothed), then on each
        baseline curve; and the x the first of them sits at."""
        lines: list[str] = []
        anchor = None
        named = [(name, s) for name, s in self.series.items()]
        named += [(f"{name} · {self.baseline_name}", s) for name, s in self.baselines.items()]
        for name, s in named:
            xs = s.xs
            ok = np.flatnonzero(np.isfinite(xs))
            if not len(ok):
                continue
            j = int(np.clip(np.searchsorted(xs[ok], x), 0, len(ok) - 1))
            if j > 0 and abs(xs[ok[j - 1]] - x) < abs(xs[ok[j]] - x):
                j -= 1
            i = ok[j]
            anchor = float(xs[i]) if anchor is None else anchor
            raw = f" (raw {s.ys[i]:.4g})" if s.smooth is not None and s.smoothed[i] != s.ys[i] else ""
            lines.append(f"{name} @ {format_x(xs[i], self.x_axis)}: {s.smoothed[i]:.4g}{raw}")
        return lines, x if anchor is None else anchor


def format_x(x: float, axis: str) -> str:
    """An x value as the read-out says it: a step or epoch number, or a wall time as 12.3 s / 4:05 / 1:02:03."""
    if axis != "time":
        return f"{x:g}"
    if x < 60:
        return f"{x:.1f} s"
    s = int(round(x))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class BarPlot(FollowsPalette, pg.PlotWidget):
    """Bars (e.g. KL per latent dimension), replaced wholesale on each update."""

    def __init__(self, title: str, *, x_label: str = "latent dimension", parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, viewBox=StickyViewBox(headroom=0.0))
        self.title = title
        self.heights = np.zeros(0, np.float64)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=COLORS[0])
        self.addItem(self._bars)
        item = self.getPlotItem()
        item.setTitle(title)
        item.setLabel("bottom", x_label)
        item.showGrid(y=True, alpha=0.2)
        self.setMinimumSize(110, 110)
        self._pending: np.ndarray | None = None
        self._ready = True
        style_plot(self, title)

    def set_values(self, values: np.ndarray) -> None:
        self._pending = np.asarray(values, np.float64).copy()

    @property
    def dirty(self) -> bool:
        return self._pending is not None

    def redraw(self) -> None:
        if self._pending is None:
            return
        self.heights, self._pending = self._pending, None
        x = np.arange(len(self.heights))
        self._bars.setOpts(x=x, height=self.heights, width=0.8)
        self.setToolTip("  ".join(f"z{i}: {h:.2f}" for i, h in enumerate(self.heights)))

    def apply_palette(self) -> None:
        style_plot(self, self.title)

    def clear_data(self) -> None:
        self._pending = np.zeros(0)
