"""A grid of small images shown pixel-exact: nearest-neighbour scaling by a whole factor, so an 8x8 digit stays crisp.

Panels hand it a uint8 numpy batch (N, H, W, C) — a copy made on a worker thread — and it paints one cached QImage.
Clicking a cell emits `clicked(index)`. Optional row labels (e.g. class names) sit in a left margin, optional captions
under each cell.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.images import image_grid


def array_to_qimage(arr: np.ndarray) -> QImage:
    """A deep-copied QImage of a uint8 (H, W, C) array with C = 1, 3 or 4 (or a 2-D (H, W) grayscale array)."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise TypeError(f"array_to_qimage needs uint8 pixels, not {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"array_to_qimage needs (H, W, C) with C in 1, 3, 4, not {a.shape}")
    h, w, c = a.shape
    fmt = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}[c]
    # Copy into a QImage that owns its pixels (rows padded to 4 bytes) rather than wrapping the numpy buffer: the
    # wrapping constructor ties the image's lifetime to the array, and its release at interpreter exit has crashed.
    img = QImage(w, h, fmt)
    if w and h:
        stride = img.bytesPerLine()
        view = np.frombuffer(img.bits(), np.uint8, count=stride * h).reshape(h, stride)
        view[:, : w * c] = a.reshape(h, w * c)
    return img


class ImageGrid(QWidget):
    clicked = Signal(int)   # index into the images last given to set_images

    _GAP = 2          # pixels between cells
    _CAPTION_H = 14   # height reserved under each cell when there are captions

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._images: np.ndarray = np.zeros((0, 1, 1, 1), np.uint8)
        self._columns = 1
        self._row_labels: list[str] | None = None
        self._captions: list[str] | None = None
        self._mosaic: QImage | None = None     # all cells at scale 1 with gaps, rebuilt on set_images
        self._highlight: int | None = None
        self._layout_cache: tuple[tuple, tuple[float, QRect]] | None = None   # (key, layout) for the current size
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(64, 64)

    # ---- data ---------------------------------------------------------------------------------------------------
    def set_images(self, images: np.ndarray, *, columns: int, row_labels: list[str] | None = None,
                   captions: list[str] | None = None) -> None:
        imgs = np.asarray(images)
        if imgs.ndim == 3:          # (N, H, W) grayscale
            imgs = imgs[..., None]
        if imgs.ndim != 4 or imgs.dtype != np.uint8:
            raise ValueError(f"ImageGrid.set_images needs uint8 (N, H, W, C), not {imgs.dtype} {imgs.shape}")
        if columns < 1:
            raise ValueError("columns must be at least 1")
        self._images = imgs
        self._columns = int(columns)
        self._row_labels = list(row_labels) if row_labels else None
        self._captions = list(captions) if captions else None
        self._highlight = None
        self._mosaic = self._build_mosaic()
        self._layout_cache = None
        self.updateGeometry()
        self.update()

    def clear(self) -> None:
        self.set_images(np.zeros((0, 1, 1, 1), np.uint8), columns=1)

    def count(self) -> int:
        return int(self._images.shape[0])

    @property
    def images(self) -> np.ndarray:
        """The images shown, (N, H, W, C) uint8."""
        return self._images

    def set_highlight(self, index: int | None) -> None:
        self._highlight = index
        self.update()

    @property
    def rows(self) -> int:
        n = self.count()
        return (n + self._columns - 1) // self._columns if n else 0

    def _build_mosaic(self) -> QImage | None:
        n = self.count()
        if n == 0:
            return None
        c = self._images.shape[3]
        rgb = self._images if c != 1 else np.repeat(self._images, 3, axis=3)
        if rgb.shape[3] == 3:
            rgba = np.concatenate([rgb, np.full(rgb.shape[:3] + (1,), 255, np.uint8)], axis=3)
        else:
            rgba = rgb
        # Gaps are transparent so cells read as separate tiles on light and dark themes alike.
        return array_to_qimage(image_grid(rgba[:n], self._columns, padding=self._GAP, outer_border=False))

    # ---- geometry ----------------------------------------------------------------------------------------------
    def _label_width(self) -> int:
        if not self._row_labels:
            return 0
        fm = self.fontMetrics()
        return max(fm.horizontalAdvance(s) for s in self._row_labels) + 8

    def _layout(self) -> tuple[float, QRect]:
        """(scale, rectangle the mosaic is painted into) for the current widget size. Large scales are whole numbers
        (every source pixel the same size); below 4x a fractional scale fills the space, since a 16 px digit drawn
        at 1x in a 300 px box is unreadable. Cached per size and font: a repaint asks for it once per cell, and
        measuring the row labels each time made repainting a live preview grid cost ~6 ms of GUI-thread time."""
        if self._mosaic is None:
            return 1, QRect()
        key = (self.width(), self.height(), self.font().key())
        if self._layout_cache is None or self._layout_cache[0] != key:
            self._layout_cache = (key, self._compute_layout())
        return self._layout_cache[1]

    def _compute_layout(self) -> tuple[float, QRect]:
        _, h, w, _ = self._images.shape
        rows, cols, g = self.rows, self._columns, self._GAP
        cap = self._CAPTION_H if self._captions else 0
        label_w = self._label_width()
        avail_w = max(1, self.width() - label_w - (cols - 1) * g)
        avail_h = max(1, self.height() - (rows - 1) * g - rows * cap)
        fit = min(avail_w / (cols * w), avail_h / (rows * h))
        scale = float(int(fit)) if fit >= 4 else max(1.0, fit)
        cell_w, cell_h = int(w * scale), int(h * scale) + cap
        total_w = cols * cell_w + (cols - 1) * g
        total_h = rows * cell_h + (rows - 1) * g
        left = label_w + max(0, (self.width() - label_w - total_w) // 2)
        top = max(0, (self.height() - total_h) // 2)
        return scale, QRect(left, top, total_w, total_h)

    def _cell_rect(self, index: int) -> QRect:
        scale, area = self._layout()
        _, h, w, _ = self._images.shape
        g = self._GAP
        cap = self._CAPTION_H if self._captions else 0
        r, c = divmod(index, self._columns)
        cw, ch = int(w * scale), int(h * scale)
        return QRect(area.left() + c * (cw + g), area.top() + r * (ch + cap + g), cw, ch)

    def index_at(self, pos: QPoint) -> int:
        """The image index under a widget position, or -1."""
        for i in range(self.count()):
            if self._cell_rect(i).contains(pos):
                return i
        return -1

    def sizeHint(self) -> QSize:
        if self._mosaic is None:
            return QSize(200, 200)
        _, h, w, _ = self._images.shape
        # Small images at a readable size, but a modest hint overall: layouts decide the real size.
        scale = max(1, min(96 // max(h, w), 320 // max(1, self._columns * w), 320 // max(1, self.rows * h)))
        cap = self._CAPTION_H if self._captions else 0
        return QSize(self._label_width() + self._columns * (w * scale + self._GAP),
                     self.rows * (h * scale + cap + self._GAP))

    # ---- painting and input ------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        if self._mosaic is None:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no images yet")
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)   # nearest neighbour
        # Cell by cell so the gaps stay GAP pixels wide at any scale (a scaled mosaic would scale its gaps too).
        self._paint_cells(p)
        text = self.palette().color(QPalette.ColorRole.Text)
        p.setPen(text)
        if self._row_labels:
            label_w = self._label_width()
            for r, label in enumerate(self._row_labels[: self.rows]):
                cell = self._cell_rect(r * self._columns)
                p.drawText(QRect(0, cell.top(), label_w - 4, cell.height()),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
        if self._captions:
            for i, cap in enumerate(self._captions[: self.count()]):
                cell = self._cell_rect(i)
                p.drawText(QRect(cell.left() - 8, cell.bottom() + 1, cell.width() + 16, self._CAPTION_H),
                           Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, cap)
        if self._highlight is not None and 0 <= self._highlight < self.count():
            p.setPen(QColor(255, 140, 0))
            p.drawRect(self._cell_rect(self._highlight).adjusted(-1, -1, 0, 0))
        p.end()

    def _paint_cells(self, p: QPainter) -> None:
        _, h, w, _ = self._images.shape
        g = self._GAP
        for i in range(self.count()):
            r, c = divmod(i, self._columns)
            src = QRect(c * (w + g), r * (h + g), w, h)
            p.drawImage(self._cell_rect(i), self._mosaic, src)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            i = self.index_at(event.position().toPoint())
            if i >= 0:
                self.clicked.emit(i)
                return
        super().mousePressEvent(event)

    # ---- export ------------------------------------------------------------------------------------------------
    def to_image(self) -> QImage:
        """What the widget shows, at its current size (a blank image when nothing is set)."""
        img = QImage(self.size().expandedTo(QSize(1, 1)), QImage.Format.Format_ARGB32)
        img.fill(self.palette().color(QPalette.ColorRole.Base))
        self.render(img)
        return img

    def save_png(self, path: str) -> None:
        if not self.to_image().save(str(path), "PNG"):
            from core.errors import UserError

            raise UserError(f"could not write {path}: check the folder exists and is writable")
