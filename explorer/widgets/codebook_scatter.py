"""A codebook's map: one point per code vector (at most a few thousand), each with its own colour and size, the dead
codes drawn as red crosses, the clicked code ringed in black, a set of codes (an image's) ringed in orange. A click
on a code emits `codeClicked(code)`; the hover tip names the code. Pure: it knows positions, colours and sizes, not
what a code is."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QWidget

from explorer.widgets.live_plot import FollowsPalette, style_legend, style_plot

DEAD_COLOUR = "#d62728"


class CodebookScatter(FollowsPalette, pg.PlotWidget):
    codeClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent)
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setAspectLocked(True)
        self.xy = np.zeros((0, 2), np.float32)
        self.used = pg.ScatterPlotItem(pen=pg.mkPen(60, 60, 60, 120), hoverable=True, tip=self._tip)
        self.dead = pg.ScatterPlotItem(symbol="x", size=11, pen=pg.mkPen(DEAD_COLOUR, width=2),
                                       brush=pg.mkBrush(DEAD_COLOUR), hoverable=True, tip=self._tip)
        self.ring = pg.ScatterPlotItem(symbol="o", size=26, pen=pg.mkPen("#000000", width=2), brush=None)
        self.rings = pg.ScatterPlotItem(symbol="o", size=20, pen=pg.mkPen("#ff7f0e", width=2), brush=None)
        for it in (self.used, self.dead, self.ring, self.rings):
            self.addItem(it)
        self.used.sigClicked.connect(self._on_clicked)
        self.dead.sigClicked.connect(self._on_clicked)
        self.legend = item.addLegend(offset=(-4, 4))
        self._legend_items: list[pg.ScatterPlotItem] = []
        self.title_text = ""
        self._ready = True
        self.apply_palette()

    def apply_palette(self) -> None:
        """Canvas, axes, title, legend and the clicked code's ring in the look's colours (light or dark)."""
        fg = style_plot(self, self.title_text or None)
        style_legend(self, self.legend, fg)
        self.ring.setPen(pg.mkPen(fg, width=2))

    @staticmethod
    def _tip(x: float, y: float, data: object) -> str:
        return f"code {data}"

    def set_codes(self, xy: np.ndarray, brushes: list, sizes: np.ndarray, dead: np.ndarray) -> None:
        """Codes at `xy` (K, 2); `brushes` and `sizes` per code; `dead` a (K,) bool mask (those are crosses)."""
        self.xy = np.asarray(xy, dtype=np.float32)
        alive = np.flatnonzero(~dead)
        gone = np.flatnonzero(dead)
        self.used.setData(x=self.xy[alive, 0], y=self.xy[alive, 1], size=np.asarray(sizes)[alive],
                          brush=[brushes[i] for i in alive], data=alive)
        self.dead.setData(x=self.xy[gone, 0], y=self.xy[gone, 1], data=gone)
        self.ring.setData([], [])
        self.rings.setData([], [])
        self.getPlotItem().enableAutoRange()

    def set_legend(self, entries: list[tuple[str, object]]) -> None:
        """Legend rows (name, brush); the dead codes' cross is always the last row when there are any."""
        self.legend.clear()
        self._legend_items = []
        for name, brush in entries:
            sample = pg.ScatterPlotItem(symbol="o", size=10, brush=brush, pen=pg.mkPen(60, 60, 60, 120))
            self._legend_items.append(sample)
            self.legend.addItem(sample, name)

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.getPlotItem().setTitle(text or None, color=self.palette().color(QPalette.ColorRole.Text).name())

    def set_axes(self, x_label: str | None, y_label: str | None) -> None:
        item = self.getPlotItem()
        item.setLabel("bottom", x_label or "")
        item.setLabel("left", y_label or "")

    def clear_codes(self) -> None:
        self.xy = np.zeros((0, 2), np.float32)
        for it in (self.used, self.dead, self.ring, self.rings):
            it.setData([], [])
        self.legend.clear()
        self.set_title("")

    def mark(self, code: int | None) -> None:
        if code is None or not 0 <= code < len(self.xy):
            self.ring.setData([], [])
        else:
            self.ring.setData([self.xy[code, 0]], [self.xy[code, 1]])

    def ring_codes(self, codes: np.ndarray | None) -> None:
        """Orange rings round `codes` (None or empty: none)."""
        if codes is None or len(codes) == 0:
            self.rings.setData([], [])
        else:
            at = self.xy[np.asarray(codes, dtype=np.int64)]
            self.rings.setData(at[:, 0], at[:, 1], data=np.asarray(codes))

    def scene_position(self, code: int):
        """Where code `code` is drawn, in this widget's coordinates (tests click there)."""
        view = self.getPlotItem().vb
        scene = view.mapViewToScene(pg.Point(float(self.xy[code, 0]), float(self.xy[code, 1])))
        return self.mapFromScene(scene)

    def _on_clicked(self, _item, points, _ev=None) -> None:
        if len(points):
            self.codeClicked.emit(int(points[0].data()))
