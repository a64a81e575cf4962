"""Images that zoom, pan and point together (napari's linked layers): one `PixelView` per image, a `LinkedViews` group.

A `PixelView` draws one image pixel-exact (nearest neighbour) in a pyqtgraph ViewBox: the wheel zooms, dragging pans,
a double click fits the image again. All views of a group share one coordinate system (the model's pixels: x to the
right, y down), so an image of another resolution (an original file beside its 16x16 conversion) is placed by a
rectangle in those coordinates and lines up with the others. The group gives every view the range of the one the
user zoomed or panned, and draws a crosshair at the same place in every view; `crosshairMoved(x, y)` tells its
owner where, so it can show the pixel values under it (`PixelView.value_at`).

Pure widget: numpy arrays in, no application state.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QMouseEvent, QPalette
from PySide6.QtWidgets import QWidget

CROSSHAIR_PEN = pg.mkPen((255, 140, 0, 200), width=1)
OUTLINE_PEN = pg.mkPen((255, 140, 0, 160), width=1, style=Qt.PenStyle.DashLine)


class PixelView(pg.GraphicsView):
    """One image in a zoomable, pannable view; `hovered(x, y)` in the group's coordinates (nan, nan: left)."""

    hovered = Signal(float, float)
    fitRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=None)
        self.setBackgroundBrush(self.palette().color(QPalette.ColorRole.Base))
        self.box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.02)
        self.setCentralItem(self.box)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.item)
        self.outline = pg.QtWidgets.QGraphicsRectItem()   # the part of the image the others show (an original file)
        self.outline.setPen(OUTLINE_PEN)
        self.outline.hide()
        self.box.addItem(self.outline, ignoreBounds=True)
        self.lines = (pg.InfiniteLine(angle=90, movable=False, pen=CROSSHAIR_PEN),
                      pg.InfiniteLine(angle=0, movable=False, pen=CROSSHAIR_PEN))
        for line in self.lines:
            line.hide()
            self.box.addItem(line, ignoreBounds=True)
        self.values: np.ndarray | None = None    # what `value_at` reads, (H, W, C)
        self.faded = False
        self.setMinimumSize(96, 96)
        self.scene().sigMouseMoved.connect(self._moved)

    def set_image(self, pixels: np.ndarray, values: np.ndarray | None = None, rect: QRectF | None = None,
                  outline: QRectF | None = None) -> None:
        """Show uint8 (H, W) or (H, W, C) `pixels` over `rect` (default: one unit a pixel from (0, 0)); `values`
        ((H, W, C), default the pixels / 255) are what `value_at` reports; `outline` marks a rectangle on it."""
        a = np.asarray(pixels)
        if a.dtype != np.uint8 or a.ndim not in (2, 3):
            raise ValueError(f"PixelView.set_image needs uint8 (H, W) or (H, W, C), not {a.dtype} {a.shape}")
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        self.item.setImage(a, levels=(0, 255), autoLevels=False)
        self.item.setRect(rect if rect is not None else QRectF(0, 0, a.shape[1], a.shape[0]))
        v = values if values is not None else a.astype(np.float32) / 255.0
        self.values = v[:, :, None] if v.ndim == 2 else v
        self.outline.setVisible(outline is not None)
        if outline is not None:
            self.outline.setRect(outline)

    def clear(self) -> None:
        self.item.clear()
        self.values = None
        self.outline.hide()

    def count(self) -> int:
        """1 when an image is shown, else 0."""
        return int(self.values is not None)

    def set_faded(self, faded: bool) -> None:
        """Grey the image (a result computed with other settings)."""
        self.faded = faded
        self.item.setOpacity(0.3 if faded else 1.0)

    def value_at(self, x: float, y: float) -> np.ndarray | None:
        """The values of the pixel at (x, y) in the group's coordinates (C,), or None off the image."""
        if self.values is None or not (math.isfinite(x) and math.isfinite(y)):
            return None
        p = self.item.mapFromView(QPointF(x, y))
        row, col = math.floor(p.y()), math.floor(p.x())
        h, w = self.values.shape[:2]
        return self.values[row, col] if 0 <= row < h and 0 <= col < w else None

    def set_crosshair(self, x: float, y: float) -> None:
        shown = math.isfinite(x) and math.isfinite(y)
        for line, pos in zip(self.lines, (x, y), strict=True):
            line.setVisible(shown)
            if shown:
                line.setValue(pos)

    def to_image(self) -> QImage:
        return self.grab().toImage()

    def _moved(self, scene_pos: QPointF) -> None:
        if self.box.sceneBoundingRect().contains(scene_pos):
            p = self.box.mapSceneToView(scene_pos)
            self.hovered.emit(p.x(), p.y())

    def leaveEvent(self, event: QEvent) -> None:
        self.hovered.emit(math.nan, math.nan)
        super().leaveEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self.fitRequested.emit()
        event.accept()


class LinkedViews(QObject):
    """Views that zoom and pan together and share a crosshair; `fit(w, h)` shows the (0, 0, w, h) rectangle.

    Linked here rather than with ViewBox.setXLink: pyqtgraph's links align views by their position on the screen
    (views side by side would each show a different part of the image)."""

    crosshairMoved = Signal(float, float)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.views: list[PixelView] = []
        self._extent = QRectF(0, 0, 1, 1)
        self._following = False

    def add(self, view: PixelView) -> None:
        self.views.append(view)
        view.box.sigRangeChanged.connect(lambda box, _range, *_: self._follow(box))
        view.hovered.connect(self.set_crosshair)
        view.fitRequested.connect(self.refit)

    def _follow(self, leader: pg.ViewBox) -> None:
        """One view's range changed (wheel, drag, fit): every other view shows the same rectangle."""
        if self._following:
            return
        self._following = True
        try:
            rect = leader.viewRect()
            for view in self.views:
                if view.box is not leader:
                    view.box.setRange(rect, padding=0)
        finally:
            self._following = False

    def set_crosshair(self, x: float, y: float) -> None:
        for view in self.views:
            view.set_crosshair(x, y)
        self.crosshairMoved.emit(x, y)

    def fit(self, width: float, height: float) -> None:
        """Show the whole (0, 0, width, height) image in every view."""
        self._extent = QRectF(0, 0, width, height)
        self.refit()

    def refit(self) -> None:
        self._following = True      # each view fits itself: a hidden view has no size to follow from
        try:
            for view in self.views:
                view.box.setRange(self._extent, padding=0.02)
        finally:
            self._following = False

    def view_range(self) -> list[list[float]]:
        """[[x0, x1], [y0, y1]] the views show (the first's: the others follow it)."""
        return self.views[0].box.viewRange() if self.views else [[0.0, 1.0], [0.0, 1.0]]
