"""A virtual grid of dataset thumbnails: 70,000 images scroll as smoothly as 70.

`ThumbnailModel` is a QAbstractListModel over a list of image indices (the current view); a thumbnail is made only
when the view paints its cell (`images(indices)` gives uint8 (n, C, H, W)) and kept in a small LRU cache, so nothing
is done per image at load time. `ThumbnailGrid` is a QListView in icon mode with uniform cell sizes (Qt then lays
out a million rows without asking each one its size). Pure widget: no state import.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from explorer.widgets.image_grid import array_to_qimage

CACHE = 2048          # thumbnails kept (a screenful is ~200)
CELL = 56             # pixels of a thumbnail


class ThumbnailModel(QAbstractListModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows = np.zeros(0, np.int64)
        self._images: Callable[[np.ndarray], np.ndarray] | None = None
        self._caption: Callable[[int], str] | None = None
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()
        self.made = 0          # thumbnails made so far (the benchmark and tests read it)

    def set_source(self, images: Callable[[np.ndarray], np.ndarray], caption: Callable[[int], str]) -> None:
        """Where the pixels (uint8 (n, C, H, W) of given indices) and the tooltips come from; the cache restarts."""
        self.beginResetModel()
        self._images, self._caption = images, caption
        self._cache.clear()
        self.rows = np.zeros(0, np.int64)
        self.endResetModel()

    def set_rows(self, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.rows = np.asarray(rows, np.int64)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self._images is None:
            return None
        image = int(self.rows[index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(image)
        if role == Qt.ItemDataRole.ToolTipRole and self._caption is not None:
            return self._caption(image)
        if role == Qt.ItemDataRole.UserRole:
            return image
        return None

    def thumbnail(self, image: int) -> QPixmap:
        pix = self._cache.get(image)
        if pix is not None:
            self._cache.move_to_end(image)
            return pix
        arr = np.transpose(np.asarray(self._images(np.array([image])))[0], (1, 2, 0))   # (C, H, W) -> (H, W, C)
        pix = QPixmap.fromImage(array_to_qimage(arr)).scaled(
            CELL, CELL, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
        self._cache[image] = pix
        self.made += 1
        if len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        return pix


class ThumbnailGrid(QListView):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbs = ThumbnailModel(self)
        self.setModel(self.thumbs)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setUniformItemSizes(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(CELL, CELL))
        self.setGridSize(QSize(CELL + 6, CELL + 6))
        self.setSpacing(0)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setLayoutMode(QListView.LayoutMode.Batched)     # lays out in slices: the GUI stays live at 70,000
        self.setBatchSize(5000)

    def selected_images(self) -> np.ndarray:
        """Image indices of the selected cells, in view order."""
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        return self.thumbs.rows[rows] if rows else np.zeros(0, np.int64)

    def select_images(self, images: np.ndarray) -> int:
        """Select the cells of these image indices (those in the view); returns how many."""
        from PySide6.QtCore import QItemSelection, QItemSelectionModel

        positions = np.flatnonzero(np.isin(self.thumbs.rows, np.asarray(images, np.int64)))
        selection = QItemSelection()
        for p in positions:      # (contiguous runs would be fewer ranges; a selection is a few hundred at most)
            idx = self.thumbs.index(int(p))
            selection.select(idx, idx)
        self.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if len(positions):
            self.scrollTo(self.thumbs.index(int(positions[0])))
        return len(positions)
