"""The Dataset tab (FiftyOne's browser, in small): every image of a split in a virtual grid, filtered by a query and
a class, sorted by class, reconstruction error or KL, shared with the app's selection, exported as a folder dataset
or an indices CSV.

The split is encoded by the shown VAE on a worker (`core.latent.map_data.cached_encoding`: the latent map's disk
cache, so a split the map encoded opens at once); the query language, sorting and exports are in
`core.latent.query` (Qt-free). Thumbnails are made only for the cells on screen (`ThumbnailGrid`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.latent.query import SORT_KEYS, Columns, export_folder_dataset, filter_rows, sort_rows, write_indices_csv
from explorer.panel import Panel
from explorer.panels.tasks import PanelTasks
from explorer.selection import ImageSelection
from explorer.widgets.dialogs import show_error
from explorer.widgets.thumbnail_grid import ThumbnailGrid

SOURCE = "dataset browser"
QUERY_HINT = "query, e.g.  class 8 and error > 0.015   ·   kl < 3   ·   not class 1 or index <= 100"


def _encode_job(loaded, split_name: str, split, progress=None, should_stop=None):
    from core.latent.map_data import cached_encoding

    return cached_encoding(loaded, split_name, split, batch_size=256, progress=progress, should_stop=should_stop)


class DatasetBrowserPanel(Panel, QWidget):
    title = "Dataset"
    uses = ("vae",)

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.tasks = PanelTasks(self)
        self.split_name = "test"
        self.columns: Columns | None = None
        self.mu: np.ndarray | None = None
        self.class_names: list[str] = []
        self._images: Any = None         # uint8 (N, C, H, W) of the split (CPU numpy view)
        self._encoded_for: tuple[Any, Any, str] | None = None
        self.filter_ms = 0.0
        self._build()
        view.vaeChanged.connect(self.reload)
        view.datasetChanged.connect(self.reload)
        view.state.selectionChanged.connect(self._on_app_selection)

    def _build(self) -> None:
        self.split_box = QComboBox()
        self.split_box.addItems(["test", "val", "train"])
        self.split_box.currentTextChanged.connect(self._on_split)
        self.query = QLineEdit()
        self.query.setPlaceholderText(QUERY_HINT)
        self.query.setToolTip(QUERY_HINT)
        self.query.returnPressed.connect(self.apply)
        self.class_box = QComboBox()
        self.class_box.addItem("all classes")
        self.class_box.currentIndexChanged.connect(lambda _: self.apply())
        self.sort_box = QComboBox()
        self.sort_box.addItems([f"sort by {k}" for k in SORT_KEYS])
        self.sort_box.currentIndexChanged.connect(lambda _: self.apply())
        self.descending = QCheckBox("descending")
        self.descending.toggled.connect(lambda _: self.apply())
        top = QHBoxLayout()
        for w in (self.split_box, self.class_box, self.sort_box, self.descending):
            top.addWidget(w)
        top.addWidget(self.query, 1)
        self.status = QLabel("Show a VAE and a dataset: each image of the split is listed with its class, "
                             "reconstruction error and KL.")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setTextVisible(True)
        self.grid = ThumbnailGrid()
        self.select_button = QPushButton("Use as the selection")
        self.select_button.setToolTip("The selected images (or, with none selected, the whole view) become the app's "
                                      "selection: the latent map rings them; the Sampler and Interpolate take them")
        self.select_button.clicked.connect(self.share_selection)
        self.folder_button = QPushButton("Export folder...")
        self.folder_button.setToolTip("The view's images as a folder dataset (a subfolder of PNGs per class)")
        self.folder_button.clicked.connect(self._ask_folder)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.setToolTip("The view's split, index, class, error and KL, one line per image")
        self.csv_button.clicked.connect(self._ask_csv)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.progress)
        for b in (self.select_button, self.folder_button, self.csv_button):
            bottom.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.grid, 1)
        lay.addLayout(bottom)

    # ---- loading ----------------------------------------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.reload()

    def _on_split(self, name: str) -> None:
        self.split_name = name
        self.reload()

    def reload(self) -> None:
        """Encode the split with the shown VAE (on a worker) unless it is what is listed already; only while shown."""
        if not self.isVisible():
            return
        target = self.view.split_to_encode(self.split_name)
        if isinstance(target, str):
            self.status.setText(target)
            return
        loaded, split = target
        key = (loaded, self.view.dataset, self.split_name)
        if key == self._encoded_for:
            return
        self._encoded_for = key
        self.status.setText(f"encoding {len(split):,} {self.split_name} images…")
        images = split.images.cpu().numpy()
        names = list(self.view.dataset.meta.class_names)
        self.tasks.start("encode", _encode_job, loaded, self.split_name, split, progress=self.progress,
                         progress_format="encode %p%{eta}", status=self.status.setText,
                         on_result=lambda lat: lat is not None and self.set_data(
                             self.split_name, images, Columns(lat.labels, lat.recon_error, lat.kl), names, lat.mu))

    def set_data(self, split_name: str, images: np.ndarray, columns: Columns, class_names: list[str],
                 mu: np.ndarray | None = None) -> None:
        """List a split: its images (uint8 (N, C, H, W), read only for the cells shown) and what a query asks."""
        self.split_name, self._images, self.columns, self.mu = split_name, images, columns, mu
        self.class_names = list(class_names)
        self.grid.thumbs.set_source(lambda idx: self._images[idx], self._caption)
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItems(["all classes", *self.class_names])
        self.class_box.blockSignals(False)
        self.apply()

    def _caption(self, i: int) -> str:
        c = self.columns
        label = int(c.labels[i])
        name = self.class_names[label] if 0 <= label < len(self.class_names) else str(label)
        return f"{self.split_name} #{i} · class {name} · error {c.error[i]:.4g} · KL {c.kl[i]:.3g}"

    # ---- the view ---------------------------------------------------------------------------------------------------
    def apply(self) -> bool:
        """Filter (query and class) and sort; a bad query leaves the view as it was and says why in one line."""
        if self.columns is None:
            return False
        start = time.perf_counter()
        try:
            rows = filter_rows(self.query.text(), self.columns, self.class_names)
        except UserError as exc:
            self.status.setText(str(exc))
            self.status.setStyleSheet("color: #c0392b;")
            return False
        if self.class_box.currentIndex() > 0:
            rows = rows[self.columns.labels[rows] == self.class_box.currentIndex() - 1]
        rows = sort_rows(rows, self.columns, SORT_KEYS[self.sort_box.currentIndex()],
                         descending=self.descending.isChecked())
        self.filter_ms = 1000 * (time.perf_counter() - start)
        self.grid.thumbs.set_rows(rows)
        self.status.setStyleSheet("")
        self.status.setText(f"{len(rows):,} of {len(self.columns):,} {self.split_name} images "
                            f"(filtered and sorted in {self.filter_ms:.1f} ms)")
        return True

    @property
    def rows(self) -> np.ndarray:
        return self.grid.thumbs.rows

    def share_selection(self) -> None:
        """The selected cells (the whole view when none is) become the app's selection."""
        chosen = self.grid.selected_images()
        chosen = chosen if len(chosen) else self.rows
        if self.columns is None or not len(chosen):
            return
        latents = self.mu[chosen] if self.mu is not None else np.zeros((len(chosen), 0), np.float32)
        vae = self.view.vae
        what = self.query.text().strip() or "all"
        self.view.set_selection(ImageSelection(
            SOURCE, (self.split_name,) * len(chosen), chosen.copy(), self.columns.labels[chosen].copy(), latents,
            description=f"dataset browser: {what}", model=None if vae is None else vae.model,
            dataset=self.view.dataset))

    def _on_app_selection(self) -> None:
        """Another panel's selection (the latent map's lasso ...): select its images of this split here."""
        sel = self.view.selection
        if sel is None or sel.source == SOURCE or self.columns is None or sel.problem_with(self.view.dataset):
            return
        mine = np.asarray(sel.indices)[np.asarray(sel.splits) == self.split_name]
        n = self.grid.select_images(mine)
        self.status.setText(f"{sel.description or sel.source}: {n:,} of its images are in this view")

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        write_indices_csv(path, self.split_name, self.rows, self.columns, self.class_names)

    def export_folder(self, folder: str) -> int:
        return export_folder_dataset(folder, lambda idx: self._images[idx], self.rows, self.columns.labels,
                                     self.class_names, split=self.split_name)

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the view as CSV", "view.csv", "CSV (*.csv)")
        if path and self.columns is not None:
            try:
                self.export_csv(path)
            except UserError as exc:
                show_error(self, str(exc))

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the view into an empty folder")
        if folder and self.columns is not None:
            try:
                n = self.export_folder(folder)
                self.status.setText(f"{n:,} images written to {folder}")
            except UserError as exc:
                show_error(self, str(exc))

    def shutdown(self) -> None:
        self.tasks.shutdown()
