"""The Interpolate tab's traversal list scrolls up and down, never sideways: each row (the dimension's name and KL, its
slider, its value) lies whole inside the list's viewport, beside the vertical scroll bar, when the panel is squeezed
to its minimum width and after every rebuild (a new model, a layer picked). Found at a 1024-px window: each row's
value ("+0.00") was cut under the scroll bar, because the list was (re)built while shown and rows added to a shown
widget count for nothing in its minimum width until they are shown (the list claimed 34 px for 202 px of rows)."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QSplitter, QWidget

from explorer.panels.interpolate.traversal import TraversalView


def _rows_outside(view: TraversalView) -> list[str]:
    """The rows with a part outside the list's viewport, horizontally: 'name: left..right of width'."""
    viewport = view.scroll.viewport()
    grid = view.scroll.widget().layout()
    outside = []
    for row in range(grid.rowCount()):
        parts = [grid.itemAtPosition(row, col) for col in range(grid.columnCount())]
        widgets = [item.widget() for item in parts if item is not None and item.widget() is not None]
        if not widgets:
            continue
        left = min(w.mapTo(viewport, w.rect().topLeft()).x() for w in widgets)
        right = max(w.mapTo(viewport, w.rect().topRight()).x() for w in widgets)
        if left < 0 or right >= viewport.width():
            outside.append(f"{widgets[0].text()}: {left}..{right} of {viewport.width()}")
    return outside


def test_each_traversal_row_fits_beside_the_scroll_bar_after_every_rebuild(qtbot):
    split = QSplitter()
    qtbot.addWidget(split)
    view = TraversalView()
    split.addWidget(QWidget())          # the rest of the panel, taking all the room the list leaves it
    split.addWidget(view)
    split.setCollapsible(1, False)      # squeezed to its minimum width, not folded away
    split.resize(700, 260)
    split.show()
    kl = np.linspace(1.6, 0.0, 24).astype(np.float32)
    names = [f"z{d}" for d in range(24)]
    hierarchical = [f"{layer}[{i}]" for layer in ("top", "bottom") for i in range(12)]
    for dims, labels in ((None, names), (None, names), (slice(12, 24), hierarchical)):
        view.build(kl, dims, labels)    # built while shown, as the panel does once a model is encoded
        split.setSizes([700, 0])        # the list at its narrowest
        qtbot.wait(20)
        assert len(view.slider_dims()) == (24 if dims is None else 12)
        assert view.scroll.verticalScrollBar().isVisible()       # 12 or 24 rows in 260 px: the list scrolls
        assert view.width() >= view.scroll.widget().minimumSizeHint().width() > 150
        assert _rows_outside(view) == []
        assert not view.scroll.horizontalScrollBar().isVisible()
