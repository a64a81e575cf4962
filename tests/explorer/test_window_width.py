"""The main window fits a laptop screen (1366 px wide) with the models list docked beside the panels, and no text
makes it wider: a long status line, title or model name wraps or is cut with "…" instead. (A region title marked out
of date had once grown the window to 1,956 px.)"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel
from test_latent_scale import open_window

LAPTOP_WIDTH = 1366 - 86   # the screen less a window frame and a little room
LONG = "a long line that names a model, its data, its settings and what went wrong, " * 4


def test_no_label_widens_the_window(qtbot):
    _state, window = open_window(qtbot)
    assert window.minimumSizeHint().width() <= LAPTOP_WIDTH
    widgets = {**window.panels, "header": window.header, "status bar": window.statusBar()}
    captions = set(window.header.labels.values())   # "VAE:", "diffusion:": fixed words, never long
    grew = []
    for name, widget in widgets.items():
        base = widget.minimumSizeHint().width()
        for label in widget.findChildren(QLabel):
            if label in captions:
                continue
            old = label.text()
            label.setText(LONG)
            if widget.minimumSizeHint().width() > base + 50:
                grew.append(f"{name}: {old[:40]!r}")
            label.setText(old)
    assert grew == []
    for label in window.findChildren(QLabel):
        if label not in captions:
            label.setText(LONG)
    assert window.minimumSizeHint().width() <= LAPTOP_WIDTH
