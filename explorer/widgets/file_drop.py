"""Drop a file onto a widget: `FileDrop(widget).dropped(path)` for the first local file of a drag.

An event filter, so any widget (a whole tab) takes file drops without subclassing: drags that carry no local file
(text, a web address) are refused, so the pointer says "not here" before the drop. Pure widget helper.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QMimeData, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QWidget


def first_local_file(mime: QMimeData | None) -> str | None:
    """The first local file path a drag carries, or None."""
    if mime is None or not mime.hasUrls():
        return None
    return next((url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()), None)


class FileDrop(QObject):
    dropped = Signal(str)

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        widget.setAcceptDrops(True)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(event, (QDragEnterEvent, QDragMoveEvent)):
            if first_local_file(event.mimeData()) is not None:
                event.acceptProposedAction()
            else:
                event.ignore()
            return True
        if isinstance(event, QDropEvent):
            path = first_local_file(event.mimeData())
            if path is None:
                event.ignore()
                return True
            event.acceptProposedAction()
            self.dropped.emit(path)
            return True
        return super().eventFilter(watched, event)
