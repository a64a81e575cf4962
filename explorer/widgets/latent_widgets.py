"""Small widgets the latent panels share: a pixel-exact single-image view, the inspectors' small bar plot and a
"latest value wins" rate limiter."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from explorer.widgets.image_grid import array_to_qimage
from explorer.widgets.live_plot import FollowsPalette, style_plot


class InspectorBars(FollowsPalette, pg.PlotWidget):
    """A small fixed (no pan / zoom) bar plot on the look's canvas colour, for a side view (a latent vector, a code's
    use per class)."""

    def __init__(self, x_label: str, *, max_height: int = 140) -> None:
        super().__init__()
        self.setMaximumHeight(max_height)
        self.setMouseEnabled(x=False, y=False)
        self.setLabel("bottom", x_label)
        self._ready = True
        self.apply_palette()

    def apply_palette(self) -> None:
        style_plot(self, None)


def inspector_bars(x_label: str, *, max_height: int = 140) -> tuple[InspectorBars, pg.BarGraphItem]:
    """The plot and its bars: `bars.setOpts(x=..., height=...)` fills it."""
    plot = InspectorBars(x_label, max_height=max_height)
    bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#1f77b4")
    plot.addItem(bars)
    return plot, bars


class PixelView(QWidget):
    """One uint8 (H, W, C) image, scaled by nearest neighbour to fit (a 16 px digit stays crisp), with a caption."""

    def __init__(self, parent: QWidget | None = None, *, minimum: int = 96) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._caption = ""
        self.setMinimumSize(minimum, minimum)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: np.ndarray | None, caption: str = "") -> None:
        self._array = None if image is None else np.asarray(image)
        self._image = None if image is None else array_to_qimage(self._array)
        self._caption = caption
        self.update()

    def image(self) -> np.ndarray | None:
        return self._array

    def caption(self) -> str:
        return self._caption

    def sizeHint(self) -> QSize:
        return QSize(160, 160)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        text_h = 16 if self._caption else 0
        area = self.rect().adjusted(2, 2, -2, -2 - text_h)
        if self._image is not None and area.width() > 0 and area.height() > 0:
            w, h = self._image.width(), self._image.height()
            scale = max(1, min(area.width() // w, area.height() // h))
            target = QRect(0, 0, w * scale, h * scale)
            target.moveCenter(area.center())
            p.drawImage(target, self._image)
            p.setPen(QColor(128, 128, 128))
            p.drawRect(target.adjusted(0, 0, -1, -1))
        if self._caption:
            p.setPen(self.palette().windowText().color())
            p.drawText(QRect(0, self.height() - text_h, self.width(), text_h), Qt.AlignmentFlag.AlignCenter,
                       self._caption)
        p.end()
