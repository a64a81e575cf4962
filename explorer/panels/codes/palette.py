"""The codebook palette (one tile per code: its decoded look on its colour, its index; dead codes crossed out) and
the codebook usage histogram (cells per code over a split; dead codes marked red, the brush's bar highlighted).
Both listen to the `CodesModel`; picking a tile or a bar sets the brush."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem, QStyle, QWidget

from explorer.panels.codes.grid_view import code_color, to_pixmap
from explorer.panels.codes.model import CodesModel
from explorer.widgets.live_plot import FollowsPalette, style_plot

TILE = 40
DEAD = QColor(215, 40, 40)


def tile_icon(code: int, look: np.ndarray | None, dead: bool) -> QIcon:
    """The code's colour as a frame around its decoded look (or a plain swatch before the looks arrive)."""
    pix = QPixmap(TILE, TILE)
    pix.fill(code_color(code))
    p = QPainter(pix)
    if look is not None:
        p.drawPixmap(4, 4, to_pixmap(look, TILE - 8))
    if dead:
        p.setPen(QPen(DEAD, 3))
        p.drawLine(2, 2, TILE - 2, TILE - 2)
        p.drawLine(TILE - 2, 2, 2, TILE - 2)
    p.end()
    return QIcon(pix)


class CodePalette(QListWidget):
    """Every codebook entry as a tile; the selected tile is the brush."""

    def __init__(self, model: CodesModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(TILE, TILE))
        self.setGridSize(QSize(TILE + 14, TILE + 20))
        # three tiles a row beside the vertical scroll bar at its narrowest
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        self.setMinimumWidth(3 * self.gridSize().width() + bar + 2 * self.frameWidth() + 4)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setToolTip("The codebook: each code's decoded look (a grid of that code alone). Pick one to paint with")
        self.currentRowChanged.connect(self._on_row)
        model.modelChanged.connect(self.rebuild)
        model.looksChanged.connect(self.rebuild)
        model.usageChanged.connect(self.rebuild)
        model.brushChanged.connect(self._select)

    def rebuild(self) -> None:
        m = self.model
        dead = set(m.dead_codes().tolist())
        self.blockSignals(True)
        self.clear()
        for k in range(m.codebook_size):
            item = QListWidgetItem(tile_icon(k, None if m.looks is None else m.looks[k], k in dead), str(k))
            used = "" if m.usage is None else f": {int(m.usage[k]):,} cells of the {m.usage_split} split"
            item.setToolTip(f"code {k}{used}" + (" (dead: no cell uses it)" if k in dead else ""))
            self.addItem(item)
        if m.codebook_size:
            self.setCurrentRow(m.brush)
        self.blockSignals(False)

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.model.set_brush(row)

    def _select(self, code: int) -> None:
        if self.currentRow() != code:
            self.setCurrentRow(code)


class UsageHistogram(FollowsPalette, pg.PlotWidget):
    """Cells per code over the usage split; dead codes are red marks under the axis; the brush's bar is orange.
    Clicking a bar picks its code as the brush."""

    def __init__(self, model: CodesModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setMinimumHeight(150)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "code")
        self.setLabel("left", "cells")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.85, brush=pg.mkBrush(70, 110, 190))
        self.brush_bar = pg.BarGraphItem(x=[], height=[], width=0.85, brush=pg.mkBrush(240, 140, 30))
        self.dead = pg.ScatterPlotItem(symbol="t", size=9, pen=None, brush=pg.mkBrush(DEAD))
        for item in (self.bars, self.brush_bar, self.dead):
            self.addItem(item)
        self.scene().sigMouseClicked.connect(self._clicked)
        model.usageChanged.connect(self.redraw)
        model.modelChanged.connect(self.redraw)
        model.brushChanged.connect(lambda _code: self.redraw())
        self._ready = True
        self.apply_palette()

    def apply_palette(self) -> None:
        style_plot(self, None)                         # the look's canvas and axis colours (light or dark)

    def redraw(self) -> None:
        m = self.model
        counts = m.usage
        if counts is None:
            for item in (self.bars, self.brush_bar):
                item.setOpts(x=[], height=[])
            self.dead.setData([], [])
            return
        x = np.arange(len(counts))
        self.bars.setOpts(x=x, height=counts)
        self.brush_bar.setOpts(x=[m.brush], height=[counts[m.brush]])
        dead = m.dead_codes()
        top = max(1, int(counts.max()))
        self.dead.setData(dead, np.full(len(dead), -0.04 * top))
        self.setXRange(-1, len(counts), padding=0)
        self.setYRange(-0.08 * top, 1.05 * top, padding=0)

    def _clicked(self, event: Any) -> None:
        if self.model.usage is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.plotItem.vb.mapSceneToView(event.scenePos())
        code = int(round(point.x()))
        if 0 <= code < self.model.codebook_size:
            self.model.set_brush(code)
