"""Live line plots for a training dashboard: preallocated buffers filled by event slots, redrawn by a timer.

`Series` is a growable pair of float64 arrays (doubling, so appends are amortised O(1) and nothing is reallocated at
plot rate). `LivePlot` is a pyqtgraph PlotWidget with named curves; `append` only writes to buffers and marks the plot
dirty; `redraw()` (called by the owner's ~30 Hz timer) pushes the buffers with `setData` only when something changed.
Curves can be EMA-smoothed with the raw values drawn faintly behind. Hovering shows a crosshair and the nearest
point's values.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGraphicsItem, QWidget

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


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
        self.headroom = headroom
        super().__init__(*args, defaultPadding=0.0, **kwargs)   # sticky_range adds the padding

    def updateAutoRange(self) -> None:
        self._auto_ranging = True
        try:
            super().updateAutoRange()
        finally:
            self._auto_ranging = False

    def setRange(self, rect=None, xRange=None, yRange=None, *args, **kwargs):
        if self._auto_ranging and rect is None:
            (x0, x1), (y0, y1) = self.viewRange()
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


def style_plot(pw: pg.PlotWidget, title: str) -> QColor:
    """Background, axes and title in the widget palette's colours (so the light and dark looks both read well).

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


class Series:
    def __init__(self, capacity: int = 1024, ema: float | None = None) -> None:
        self.x = np.empty(capacity, np.float64)
        self.y = np.empty(capacity, np.float64)
        self.smooth = np.empty(capacity, np.float64) if ema is not None else None
        self.alpha = ema
        self.n = 0
        self._ema = 0.0        # EMA started at zero, divided by its weight: no lag towards the first value
        self._ema_weight = 0.0

    def append(self, x: float, y: float) -> None:
        if self.n == len(self.x):
            grow = len(self.x)
            self.x = np.concatenate([self.x, np.empty(grow)])
            self.y = np.concatenate([self.y, np.empty(grow)])
            if self.smooth is not None:
                self.smooth = np.concatenate([self.smooth, np.empty(grow)])
        self.x[self.n] = x
        self.y[self.n] = y
        if self.smooth is not None:
            # Bias-corrected EMA (as TensorBoard's smoothing): early points are not dragged towards the first value.
            # Non-finite values are ignored instead of poisoning the curve.
            if math.isfinite(y):
                self._ema += self.alpha * (y - self._ema)
                self._ema_weight += self.alpha * (1.0 - self._ema_weight)
            self.smooth[self.n] = self._ema / self._ema_weight if self._ema_weight else y
        self.n += 1

    def clear(self) -> None:
        self.n = 0
        self._ema = self._ema_weight = 0.0

    @property
    def xs(self) -> np.ndarray:
        return self.x[: self.n]

    @property
    def ys(self) -> np.ndarray:
        return self.y[: self.n]

    @property
    def smoothed(self) -> np.ndarray:
        return self.smooth[: self.n] if self.smooth is not None else self.ys


class LivePlot(pg.PlotWidget):
    def __init__(self, title: str, *, x_label: str = "step", parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, viewBox=StickyViewBox())
        self.title = title
        self.series: dict[str, Series] = {}
        self._curves: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem | None]] = {}
        self._dirty = False
        item = self.getPlotItem()
        item.setTitle(title)
        item.setLabel("bottom", x_label)
        item.showGrid(x=True, y=True, alpha=0.2)
        # Downsampling keeps long runs cheap to draw. No clip-to-view: with it, pyqtgraph auto-ranges over the clipped
        # points only, so after a zoom the 'A' button could not bring the whole run back into view.
        item.setDownsampling(auto=True, mode="peak")
        self._legend = None
        self._vline = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((128, 128, 128, 150), width=1))
        self._vline.setVisible(False)
        self.addItem(self._vline, ignoreBounds=True)
        self._readout = pg.TextItem(anchor=(0, 0))
        self._readout.setVisible(False)
        self.addItem(self._readout, ignoreBounds=True)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.setMinimumSize(110, 110)
        self._ready = True
        self.apply_palette()

    def add_curve(self, name: str, *, ema: float | None = None, color: str | None = None) -> Series:
        """A named curve; with `ema`, a smoothed line over the raw values drawn faintly behind."""
        color = color or COLORS[len(self._curves) % len(COLORS)]
        series = Series(ema=ema)
        raw = None
        if ema is not None:
            faint = QColor(color)
            faint.setAlpha(90)
            raw = self.plot([], [], pen=pg.mkPen(faint, width=1))
        if len(self._curves) == 1 and self._legend is None:
            self._legend = self.getPlotItem().addLegend(offset=(-4, 4), brush=pg.mkBrush(128, 128, 128, 50))
            first = next(iter(self._curves))
            self._legend.addItem(self._curves[first][0], first)
        main = self.plot([], [], pen=pg.mkPen(color, width=2), name=name if self._legend is not None else None,
                         symbol="o" if ema is None and name.startswith("val") else None, symbolSize=5,
                         symbolBrush=color)
        self.series[name] = series
        self._curves[name] = (main, raw)
        return series

    def remove_curve(self, name: str) -> None:
        """Take a curve (and its legend entry) off the plot; nothing happens for an unknown name."""
        if name not in self._curves:
            return
        main, raw = self._curves.pop(name)
        del self.series[name]
        for item in (main, raw):
            if item is not None:
                self.removeItem(item)
        if self._legend is not None:
            self._legend.removeItem(main)

    def append(self, name: str, x: float, y: float) -> None:
        if name not in self.series:
            self.add_curve(name)
        self.series[name].append(x, y)
        self._dirty = True

    def clear_data(self) -> None:
        for s in self.series.values():
            s.clear()
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
                raw.setData(s.xs, s.ys)
            main.setData(s.xs, s.smoothed)

    def set_log_y(self, on: bool) -> None:
        self.getPlotItem().setLogMode(y=on)

    def apply_palette(self) -> None:
        fg = style_plot(self, self.title)
        self._readout.setColor(fg)
        if self._legend is not None:
            self._legend.setLabelTextColor(fg)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        # pyqtgraph's constructor changes the palette before our attributes exist: ignore those early changes.
        if self.__dict__.get("_ready") and event.type() in (event.Type.PaletteChange,
                                                             event.Type.ApplicationPaletteChange):
            self.apply_palette()

    # ---- hover read-out ---------------------------------------------------------------------------------------------
    def _on_mouse_moved(self, pos: QPointF) -> None:
        vb = self.getPlotItem().getViewBox()
        if not self.sceneBoundingRect().contains(pos) or not vb.sceneBoundingRect().contains(pos):
            self._vline.setVisible(False)
            self._readout.setVisible(False)
            return
        x = vb.mapSceneToView(pos).x()
        lines, anchor_x = self.readout_at(x)
        if not lines:
            return
        self._vline.setPos(anchor_x)
        self._vline.setVisible(True)
        self._readout.setText("\n".join(lines))
        (x0, _), (y0, y1) = vb.viewRange()
        self._readout.setPos(vb.mapSceneToView(pos).x(), y1)
        self._readout.setVisible(True)

    def readout_at(self, x: float) -> tuple[list[str], float]:
        """Text lines for the points nearest to x on each curve, and the x they sit at."""
        lines: list[str] = []
        anchor = x
        for name, s in self.series.items():
            if s.n == 0:
                continue
            i = int(np.clip(np.searchsorted(s.xs, x), 0, s.n - 1))
            if i > 0 and abs(s.xs[i - 1] - x) < abs(s.xs[i] - x):
                i -= 1
            anchor = float(s.xs[i])
            lines.append(f"{name} @ {s.xs[i]:g}: {s.smoothed[i]:.4g}")
        return lines, anchor


class BarPlot(pg.PlotWidget):
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

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        # pyqtgraph's constructor changes the palette before our attributes exist: ignore those early changes.
        if self.__dict__.get("_ready") and event.type() in (event.Type.PaletteChange,
                                                             event.Type.ApplicationPaletteChange):
            self.apply_palette()

    def clear_data(self) -> None:
        self._pending = np.zeros(0)
