"""Open a file in the system's viewer (a report in the browser), or, when nothing opens it (no browser, a remote
session, a bare X server), show its path with a Copy button so the user can open it elsewhere.

Pure widget: no state, no panel imports. Shown with `open()` (window-modal, no nested event loop), so tests and
workers carry on while it is up.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class PathDialog(QDialog):
    """"Could not open ...": the path, selectable, with Copy and Close."""

    def __init__(self, path: str | Path, parent: QWidget | None = None, *, what: str = "the file") -> None:
        super().__init__(parent)
        self.setObjectName("pathDialog")
        self.setWindowTitle("Open it yourself")
        self.path = str(path)
        self.message = QLabel(f"No browser or viewer opened {what}. It is here (copy the path and open it in a "
                              "browser, or send it to a colleague):")
        self.message.setWordWrap(True)
        self.path_edit = QLineEdit(self.path)
        self.path_edit.setReadOnly(True)
        self.path_edit.setMinimumWidth(420)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the path to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.copy_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.message)
        lay.addLayout(row)
        lay.addWidget(buttons)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.path)
        self.copy_button.setText("Copied")


def open_or_show_path(parent: QWidget | None, path: str | Path, *, what: str = "the file") -> PathDialog | None:
    """Open `path` with the desktop's viewer; when that fails, show a PathDialog (returned) instead."""
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return None
    dialog = PathDialog(path, parent, what=what)
    dialog.open()
    return dialog
