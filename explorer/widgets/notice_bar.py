"""Notices above the tabs: a line each, with its actions (e.g. "Resume") and a dismiss button, never a modal dialog.

What the app has to tell the user without stopping them: a model of the saved workspace that could not be found any
more, a workspace file that could not be read, an interrupted run that can be resumed, the first-run hint. Each
notice stays until it is dismissed or one of its actions is clicked; none uses a timer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget


class NoticeBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._rows = QVBoxLayout(self)
        self._rows.setContentsMargins(6, 3, 6, 3)
        self._rows.setSpacing(2)
        self.notices: list[QWidget] = []
        self.hide()

    def add(self, text: str, actions: Sequence[tuple[str, Callable[[], None]]] = (), *,
            tooltip: str = "") -> QWidget:
        """Show a notice: `text` (one line, wrapped when long) and a button per (label, callback); clicking one
        runs it and removes the notice."""
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        label = QLabel(text)
        label.setObjectName("noticeText")
        label.setWordWrap(True)
        label.setToolTip(tooltip)
        lay.addWidget(label, 1)
        for title, callback in actions:
            button = QPushButton(title)
            button.clicked.connect(lambda _=False, r=row, c=callback: (self.remove(r), c()))
            lay.addWidget(button)
        close = QToolButton()
        close.setText("×")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(lambda _=False, r=row: self.remove(r))
        lay.addWidget(close)
        self._rows.addWidget(row)
        self.notices.append(row)
        self.show()
        return row

    def texts(self) -> list[str]:
        return [row.findChild(QLabel, "noticeText").text() for row in self.notices]

    def buttons(self, row: QWidget) -> dict[str, QPushButton]:
        return {b.text(): b for b in row.findChildren(QPushButton)}

    def remove(self, row: QWidget) -> None:
        if row in self.notices:
            self.notices.remove(row)
            row.hide()
            row.deleteLater()
        self.setVisible(bool(self.notices))

    def clear(self) -> None:
        for row in list(self.notices):
            self.remove(row)
