"""The one error dialog: the message up front, the traceback (if any) behind "Show Details...".

Shown with `open()` (window-modal, not a nested event loop), so workers keep delivering events and a test can find the
box among the top-level widgets and read it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from explorer.worker import describe_exception


def show_error(parent: QWidget | None, message: str, details: str = "", *, title: str = "VAE Explorer") -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorDialog")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def show_exception(parent: QWidget | None, exc: BaseException, *, title: str = "VAE Explorer") -> QMessageBox:
    """UserError → its message only; anything else → message plus traceback in the details."""
    message, details = describe_exception(exc)
    return show_error(parent, message, details, title=title)
