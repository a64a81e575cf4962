"""Small widgets the latent panels share: a pixel-exact single-image view and a "latest value wins" rate limiter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from explorer.widgets.image_grid import array_to_qimage


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

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(160, 160)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
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


class RateLimiter(QObject):
    """Call `fn(value)` at most every `interval_ms`, always with the latest value requested.

    The first request after a quiet spell runs at once (no added latency); requests during the interval only replace
    the pending value, which runs when the interval ends. So a slider dragged fast decodes ~1000/interval_ms times a
    second and always ends on the value it was released at.
    """

    def __init__(self, fn: Callable[[Any], None], interval_ms: int = 16, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._pending: Any = None
        self._has_pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)
        self.calls = 0

    def request(self, value: Any) -> None:
        if self._timer.isActive():
            self._pending, self._has_pending = value, True
            return
        self._run(value)

    def _run(self, value: Any) -> None:
        self.calls += 1
        self._fn(value)
        self._timer.start()

    def _flush(self) -> None:
        if self._has_pending:
            value, self._pending, self._has_pending = self._pending, None, False
            self._run(value)

    def flush_now(self) -> None:
        """Run the pending value now (tests, and before an export)."""
        self._timer.stop()
        self._flush()
        self._timer.stop()

    def stop(self) -> None:
        self._timer.stop()
        self._pending, self._has_pending = None, False
