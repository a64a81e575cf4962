"""The controls the panels build the same way: a combo box wired to its handler, the status line that wraps, the
progress bar beside it, and the bottom row holding them (with any buttons after them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QWidget


def combo_box(items: Iterable[str], on_text: Callable[[str], None] | None = None, *, tooltip: str = "") -> QComboBox:
    """A combo box of `items` calling `on_text(text)` when the user (or code) picks another item."""
    box = QComboBox()
    box.addItems(list(items))
    if tooltip:
        box.setToolTip(tooltip)
    if on_text is not None:
        box.currentTextChanged.connect(on_text)
    return box


def status_label(text: str = "") -> QLabel:
    """A panel's status line: a long message wraps, it never widens the window."""
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def progress_bar(max_width: int = 200) -> QProgressBar:
    bar = QProgressBar()
    bar.setMaximumWidth(max_width)
    bar.setTextVisible(True)
    return bar


def status_row(status: QLabel, progress: QProgressBar, *after: QWidget) -> QHBoxLayout:
    """The status line (stretching), its progress bar, then `after` (e.g. the panel's export buttons)."""
    row = QHBoxLayout()
    row.addWidget(status, 1)
    row.addWidget(progress)
    for widget in after:
        row.addWidget(widget)
    return row
