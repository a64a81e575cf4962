"""A one-line label that never widens the window: when there is less room than its text needs, it shows the text
cut with "…" and the whole text in its tooltip. Long model names in the status bar and the panel header had made
the main window wider than a laptop screen."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QStyle, QStyleOptionFrame

ELIDED_MIN_PX = 120            # the narrowest an elided label gets (a long run name must not widen the window)


class ElidedLabel(QLabel):
    """A one-line label that, when the window is narrower than its text, shows the text cut with "…" (the whole
    text in its tooltip) instead of forcing the window wider: long model names made the main window wider than a
    laptop screen."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), ELIDED_MIN_PX), hint.height())

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        option = QStyleOptionFrame()
        option.initFrom(self)
        option.frameShape = self.frameShape()
        option.lineWidth = self.lineWidth()
        self.style().drawControl(QStyle.ControlElement.CE_ShapedFrame, option, painter, self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), text)
