"""The latent map's selection beside the map: the selected images in a grid, each captioned with its class and
reconstruction error, sortable, with the hand-offs (send to another panel, export) below.

The grid scrolls; cells are about `CELL_PX` pixels (a whole multiple of the image size, so digits stay crisp) with as
many columns as fit. It shows at most `SHOWN_AT_MOST` images (the first ones in the chosen order; "showing the first
400"): a grid of 5,000 costs ~100 ms to build and nobody scrolls through it; sorting brings others to the top and the
exports write the whole selection. It knows nothing of models: the panel gives it images and numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from explorer.widgets.image_grid import ImageGrid

SHOWN_AT_MOST = 400
CELL_PX = 44        # the smallest grid cell (room under it for "7 .012")
SORTS = ("as selected", "worst reconstruction first", "best reconstruction first", "class")
SEND_TARGETS = (("sampler", "Sampler (more like these)"), ("interpolate", "Interpolation (first two as A and B)"),
                ("restore", "Denoise / Enhance (the first image)"))


class SelectionGrid(QWidget):
    clickedRow = Signal(int)          # the map row of a clicked cell
    sendTo = Signal(str)              # "sampler", "interpolate" or "restore"
    exportCsv = Signal()
    exportPng = Signal()
    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows = np.zeros(0, np.int64)           # the selection as given (map rows)
        self.order = np.zeros(0, np.int64)          # the selection in the chosen sort order
        self._labels = np.zeros(0, np.int64)
        self._errors = np.zeros(0, np.float32)
        self._images_of: Callable[[np.ndarray], np.ndarray] | None = None
        self._class_names: tuple[str, ...] = ()
        self._captions: list[str] = []
        self._columns = 0
        self.title = QLabel("Nothing selected. Drag with the lasso or rectangle tool (or Shift+drag), search, or "
                            "pick the worst reconstructions.")
        self.title.setWordWrap(True)
        self.sort_box = QComboBox()
        self.sort_box.addItems(SORTS)
        self.sort_box.setToolTip("the order of the grid and of the exports")
        self.sort_box.currentIndexChanged.connect(lambda _: self._refresh())
        self.grid = ImageGrid()
        self.grid.setMinimumSize(1, 1)
        self.grid.clicked.connect(self._on_clicked)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.grid)
        self.scroll.setWidgetResizable(False)
        self.scroll.setMinimumHeight(160)
        self.send_btn = QToolButton()
        self.send_btn.setText("Send to")
        self.send_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.send_btn)
        self.send_actions = {}
        for key, text in SEND_TARGETS:
            self.send_actions[key] = menu.addAction(text, lambda k=key: self.sendTo.emit(k))
        self.send_btn.setMenu(menu)
        self.csv_btn = QPushButton("Indices CSV…")
        self.csv_btn.clicked.connect(self.exportCsv)
        self.png_btn = QPushButton("Grid PNG…")
        self.png_btn.clicked.connect(self.exportPng)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.cleared)
        sort_row = QHBoxLayout()
        sort_row.addWidget(QLabel("sort"))
        sort_row.addWidget(self.sort_box, 1)
        buttons = QHBoxLayout()
        for b in (self.send_btn, self.csv_btn, self.png_btn, self.clear_btn):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(sort_row)
        lay.addWidget(self.scroll, 1)
        lay.addLayout(buttons)
        self._enable(False)

    def _enable(self, on: bool) -> None:
        for w in (self.send_btn, self.csv_btn, self.png_btn, self.clear_btn):
            w.setEnabled(on)

    def set_selection(self, rows: np.ndarray, images_of: Callable[[np.ndarray], np.ndarray], labels: np.ndarray,
                      errors: np.ndarray, class_names: tuple[str, ...] | list[str], *, what: str = "selected") -> None:
        """Show map rows `rows`; `images_of(rows)` gives their uint8 (M, H, W, C) images, `labels` and `errors` are
        the whole map's arrays (indexed by map row)."""
        self.rows = np.asarray(rows, dtype=np.int64)
        self._images_of, self._labels, self._errors = images_of, np.asarray(labels), np.asarray(errors)
        self._class_names = tuple(class_names)
        self._what = what
        self._refresh()

    def clear(self) -> None:
        self.rows = self.order = np.zeros(0, np.int64)
        self.grid.clear()
        self.title.setText("Nothing selected.")
        self._enable(False)

    def sorted_rows(self) -> np.ndarray:
        """The selection in the order the sort box says (what the grid and the exports show)."""
        rows = self.rows
        mode = self.sort_box.currentText()
        if len(rows) == 0 or mode == "as selected":
            return rows
        if mode == "class":
            return rows[np.argsort(self._labels[rows], kind="stable")]
        err = self._errors[rows]
        return rows[np.argsort(-err if mode == "worst reconstruction first" else err, kind="stable")]

    def _refresh(self) -> None:
        if len(self.rows) == 0 or self._images_of is None:
            self.clear()
            return
        self.order = self.sorted_rows()
        shown = self.order[:SHOWN_AT_MOST]
        names = self._class_names
        def caption(r: int) -> str:
            label = int(self._labels[r])
            error = f"{self._errors[r]:.3f}".removeprefix("0")    # "7 .012": fits under a cell
            return f"{names[label] if label < len(names) else label} {error}"

        captions = [caption(r) for r in shown]
        self._columns = 0
        self._captions = captions
        self.grid.set_images(self._images_of(shown), columns=1, captions=captions)
        self._fit_grid()
        n = len(self.rows)
        more = f", showing the first {len(shown):,}" if n > len(shown) else ""
        self.title.setText(f"{n:,} {self._what}{more}; captions: class and reconstruction error (mean squared)")
        self._enable(True)

    def _fit_grid(self) -> None:
        """As many columns of ~CELL_PX cells as the scroll area is wide; the grid as tall as its rows."""
        n = self.grid.count()
        if n == 0:
            return
        _, h, w, _ = self.grid.images.shape
        scale = max(1, -(-CELL_PX // max(h, w)))      # at least CELL_PX: the caption needs the width
        gap, cap = ImageGrid._GAP, ImageGrid._CAPTION_H
        width = max(1, self.scroll.viewport().width() - 4)
        columns = max(1, min(n, (width + gap) // (w * scale + gap)))
        rows = (n + columns - 1) // columns
        if columns != self._columns:
            self._columns = columns
            self.grid.set_images(self.grid.images, columns=columns, captions=self._captions)
        self.grid.setFixedSize(columns * (w * scale + gap) - gap, rows * (h * scale + cap + gap) - gap)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_grid()

    def _on_clicked(self, k: int) -> None:
        if 0 <= k < min(len(self.order), SHOWN_AT_MOST):
            self.clickedRow.emit(int(self.order[k]))
