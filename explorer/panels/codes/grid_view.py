"""The code grid (each cell's code index on its code's colour; click or drag to paint the brush's code) and the image
panes beside it. Both listen to the `CodesModel`; the grid writes the user's strokes back to it."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from explorer.panels.codes.model import CodesModel
from explorer.widgets.image_grid import array_to_qimage

GOLDEN = 0.618033988749895


def code_color(code: int) -> QColor:
    """A fixed, well-spread colour per code (golden-ratio hues, two lightness bands): the same in the grid and the
    palette, so equal codes read as equal colours."""
    return QColor.fromHsvF((code * GOLDEN) % 1.0, 0.45 if code % 2 else 0.65, 0.97 if code % 2 else 0.85)


def to_pixmap(image: np.ndarray, size: int) -> QPixmap:
    """A float (C, H, W) image in [0, 1] as a `size`-px square pixmap, pixels kept sharp."""
    arr = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8).transpose(1, 2, 0)
    pix = QPixmap.fromImage(array_to_qimage(np.ascontiguousarray(arr)))
    return pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)


class CodeGridView(QWidget):
    """The edited code grid, drawn as coloured cells with their code index; cells that differ from the original's
    codes have a thick outline. Press and drag paints cells with the model's brush."""

    def __init__(self, model: CodesModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setMinimumSize(170, 170)        # with the images and the palette, within a 1024-px window's panel
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.setToolTip("Each cell is one code of the image's grid. Click or drag to paint cells with the chosen code")
        model.codesChanged.connect(self.update)
        model.modelChanged.connect(self.update)

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def _geometry(self) -> tuple[float, float, float]:
        """(cell size, left, top) of the square grid centred in the widget."""
        g = max(1, self.model.grid)
        side = min(self.width(), self.height()) - 2
        cell = side / g
        return cell, (self.width() - cell * g) / 2, (self.height() - cell * g) / 2

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The (row, col) under widget point (x, y), or None outside the grid."""
        if self.model.codes is None:
            return None
        cell, left, top = self._geometry()
        col, row = int((x - left) // cell), int((y - top) // cell)
        g = self.model.grid
        return (row, col) if 0 <= row < g and 0 <= col < g and x >= left and y >= top else None

    def cell_center(self, row: int, col: int) -> tuple[float, float]:
        cell, left, top = self._geometry()
        return left + (col + 0.5) * cell, top + (row + 0.5) * cell

    def mousePressEvent(self, event: Any) -> None:
        self._paint_at(event)

    def mouseMoveEvent(self, event: Any) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._paint_at(event)

    def _paint_at(self, event: Any) -> None:
        found = self.cell_at(event.position().x(), event.position().y())
        if found is not None:
            self.model.paint(*found)

    def paintEvent(self, _event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        codes, encoded = self.model.codes, self.model.encoded
        if codes is None:
            p.setPen(self.palette().color(self.foregroundRole()))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, "no image")
            return
        cell, left, top = self._geometry()
        font = QFont(self.font())
        font.setPixelSize(max(7, int(cell * (0.34 if self.model.codebook_size > 99 else 0.42))))
        p.setFont(font)
        for (r, c), code in np.ndenumerate(codes):
            rect = QRectF(left + c * cell, top + r * cell, cell, cell)
            p.fillRect(rect, code_color(int(code)))
            edited = code != encoded[r, c]
            p.setPen(QPen(QColor(20, 20, 20), 3 if edited else 1))
            p.drawRect(rect.adjusted(1, 1, -1, -1) if edited else rect)
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(int(code)))
        p.end()


class ImagePane(QWidget):
    """One image under its title (two short lines, wrapped rather than widening the window), scaled up with sharp
    pixels."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(128, 128)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)   # no resize feedback loop
        self.image.setStyleSheet("background: #202020;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.image, 1)
        self.array: np.ndarray | None = None

    def show_array(self, image: np.ndarray | None) -> None:
        self.array = image
        if image is None:
            self.image.clear()
            return
        side = max(64, min(self.image.width(), self.image.height()) - 4)
        self.image.setPixmap(to_pixmap(image, side))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.array is not None:
            self.show_array(self.array)
