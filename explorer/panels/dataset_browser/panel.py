"""The Dataset tab (FiftyOne's browser, in small): every image of a split in a virtual grid, filtered by a query and
a class, sorted by class, reconstruction error or KL, shared with the app's selection, exported as a folder dataset
or an indices CSV.

The split is encoded by the shown VAE on a worker (`core.latent.map_data.cached_encoding`: the latent map's disk
cache, so a split the map encoded opens at once); the query language, sorting and exports are in
`core.latent.query` (Qt-free). Thumbnails are made only for the cells on screen (`ThumbnailGrid`). Saved views (a named
query, class and sort order, kept with the workspace) are in saved_views.py; "only the selection" narrows the view to
the app's selection (a lasso on the latent map of any size: its grid beside the map shows the first 400).
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
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.latent.query import SORT_KEYS, Columns, export_folder_dataset, filter_rows, sort_rows, write_indices_csv
from core.latent.saved_views import SavedView, check_query
from explorer.panel import Panel
from explorer.panels.dataset_browser.saved_views import SavedViewsBar
from explorer.panels.tasks import PanelTasks
from explorer.selection import ImageSelection
from explorer.widgets.dialogs import show_error
from explorer.widgets.panel_controls import combo_box, progress_bar, status_label, status_row
from explorer.widgets.thumbnail_grid import ThumbnailGrid
from explorer.worker import Worker

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
        self.origin = ("", "")           # the dataset's and the model's names of what is listed (saved views say it)
        self.applied: SavedView | None = None    # the saved view last applied (named in the status while it holds)
        self._pending_class = ""         # a view's class to choose once its split is listed
        self.filter_ms = 0.0
        self._build()
        view.vaeChanged.connect(self.reload)
        view.datasetChanged.connect(self.reload)
        view.state.selectionChanged.connect(self._on_app_selection)
        self._on_app_selection()

    def _build(self) -> None:
        self.split_box = combo_box(["test", "val", "train"], self._on_split)
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
        self.only_selection = QCheckBox("only the selection")
        self.only_selection.setToolTip("Show only the app's selection (e.g. a lasso on the latent map, however many "
                                       "images) filtered and sorted like the rest")
        self.only_selection.toggled.connect(lambda _: self.apply())
        top = QHBoxLayout()
        for w in (self.split_box, self.class_box, self.sort_box, self.descending):
            top.addWidget(w)
        top.addWidget(self.query, 1)
        self.query.setMinimumWidth(160)
        self.saved_views = SavedViewsBar(self.view.settings, capture=self.current_view, apply=self.apply_view,
                                         class_names=lambda: self.class_names, say=self._say)
        self.saved_views.row.addWidget(self.only_selection)
        self.status = status_label("Show a VAE and a dataset: each image of the split is listed with its class, "
                                   "reconstruction error and KL.")
        self.progress = progress_bar()
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
        bottom = status_row(self.status, self.progress, self.select_button, self.folder_button, self.csv_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.saved_views)
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
        entry = self.view.shown_entry("vae")
        origin = (self.view.dataset.meta.name, entry.name if entry is not None else _file_name(loaded.path))
        self.tasks.start("encode", _encode_job, loaded, self.split_name, split, progress=self.progress,
                         progress_format="encode %p%{eta}", status=self.status.setText,
                         on_result=lambda lat: lat is not None and self.set_data(
                             self.split_name, images, Columns(lat.labels, lat.recon_error, lat.kl), names, lat.mu,
                             origin=origin))

    def set_data(self, split_name: str, images: np.ndarray, columns: Columns, class_names: list[str],
                 mu: np.ndarray | None = None, *, origin: tuple[str, str] = ("", "")) -> None:
        """List a split: its images (uint8 (N, C, H, W), read only for the cells shown) and what a query asks;
        `origin` names the dataset and model (what a saved view records). The class chosen stays if it is one of
        the new classes."""
        self.split_name, self._images, self.columns, self.mu = split_name, images, columns, mu
        self.class_names, self.origin = list(class_names), origin
        self.grid.thumbs.set_source(lambda idx: self._images[idx], self._caption)
        self._set_classes(self.class_names, self._pending_class or self._class_name())
        self._pending_class = ""
        self.apply()

    def _set_classes(self, names: list[str], keep: str) -> None:
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItems(["all classes", *names])
        self.class_box.setCurrentIndex(_class_position(names, keep))
        self.class_box.blockSignals(False)

    def _class_name(self) -> str:
        return self.class_box.currentText() if self.class_box.currentIndex() > 0 else ""

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
            self._say(str(exc), True)
            return False
        if self.class_box.currentIndex() > 0:
            rows = rows[self.columns.labels[rows] == self.class_box.currentIndex() - 1]
        if self.only_selection.isChecked():
            rows = rows[np.isin(rows, self._selected_here())]
        rows = sort_rows(rows, self.columns, SORT_KEYS[self.sort_box.currentIndex()],
                         descending=self.descending.isChecked())
        self.filter_ms = 1000 * (time.perf_counter() - start)
        self.grid.thumbs.set_rows(rows)
        self._say(self._view_line(f"{len(rows):,} of {len(self.columns):,} {self.split_name} images"
                                  f"{' in the selection' if self.only_selection.isChecked() else ''} "
                                  f"(filtered and sorted in {self.filter_ms:.1f} ms)"), False)
        return True

    def _say(self, text: str, error: bool) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #c0392b;" if error else "")

    # ---- saved views ------------------------------------------------------------------------------------------------
    def current_view(self, name: str) -> SavedView | str:
        """What is shown, as a view named `name` (or why there is nothing to save yet)."""
        if self.columns is None:
            return "nothing to save yet: the view is saved once the split is listed"
        return SavedView(name=name, query=self.query.text().strip(), class_name=self._class_name(),
                         sort=SORT_KEYS[self.sort_box.currentIndex()], descending=self.descending.isChecked(),
                         split=self.split_name, dataset=self.origin[0], model=self.origin[1],
                         count=len(self.rows), total=len(self.columns))

    def apply_view(self, view: SavedView) -> bool:
        """Put a saved view's query, class, sort order and split in place and re-run it on the data listed now (the
        count shown is today's); a view not valid here (a class this dataset lacks) is one line, nothing changed."""
        if self.columns is not None:
            try:
                check_query(view, self.class_names)
            except UserError as exc:
                self._say(str(exc), True)
                self._shown_view()
                return False
        editors = (self.query, self.class_box, self.sort_box, self.descending, self.split_box)
        for w in editors:
            w.blockSignals(True)
        self.query.setText(view.query)
        self.class_box.setCurrentIndex(_class_position(self.class_names, view.class_name))
        self.sort_box.setCurrentIndex(SORT_KEYS.index(view.sort))
        self.descending.setChecked(view.descending)
        self.split_box.setCurrentText(view.split)
        for w in editors:
            w.blockSignals(False)
        self.applied = view
        if view.split != self.split_name or self.columns is None:   # re-run once that split is listed
            self._pending_class = view.class_name
            self._on_split(view.split)
            return True
        return self.apply()

    def _shown_view(self) -> SavedView | None:
        """The saved view last applied if its settings are still the ones in place (the list shows it as chosen)."""
        view, now = self.applied, self.current_view("")
        if view is not None and (isinstance(now, str) or view.recipe() != now.recipe()):
            view = None
        self.saved_views.mark(None if view is None else view.name)
        return view

    def _view_line(self, counted: str) -> str:
        """The status line, naming the saved view shown (while its settings are the ones in place) and, when it was
        saved on other data or with another model, where and how many images it had there."""
        view = self._shown_view()
        if view is None:
            return counted
        if not view.saved_elsewhere(*self.origin):
            return f"view {view.name!r}: {counted}"
        here = " · ".join(p for p in self.origin if p) or "the data shown"
        return f"view {view.name!r} (saved on {view.origin()}) re-run on {here}: {counted}"

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

    def _selected_here(self) -> np.ndarray:
        """The app's selection's images of the split listed (none when it is of other data)."""
        sel = self.view.selection
        if sel is None or sel.problem_with(self.view.dataset):
            return np.zeros(0, np.int64)
        return np.asarray(sel.indices, np.int64)[np.asarray(sel.splits) == self.split_name]

    def _on_app_selection(self) -> None:
        """Another panel's selection (the latent map's lasso ...): select its images of this split here (with "only
        the selection", the view becomes them)."""
        sel = self.view.selection
        here = len(self._selected_here())
        self.only_selection.setText(f"only the selection ({here:,})")
        self.only_selection.setEnabled(here > 0 or self.only_selection.isChecked())
        if self.only_selection.isChecked():
            self.apply()
        if sel is None or sel.source == SOURCE or self.columns is None or sel.problem_with(self.view.dataset):
            return
        n = self.grid.select_images(self._selected_here())
        self.status.setText(f"{sel.description or sel.source}: {n:,} of its images are in this view")

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        write_indices_csv(path, self.split_name, self.rows, self.columns, self.class_names)

    def export_folder(self, folder: str) -> Worker:
        """Write the view's images into `folder` on a worker (10,000 PNGs took 2.9 s here); the status says how many
        were written, or why none could be (a folder that is not empty, not writable: one line)."""
        images, rows, split, n = self._images, self.rows.copy(), self.split_name, len(self.rows)
        return self.tasks.start(
            "export", export_folder_dataset, folder, lambda idx: images[idx], rows, self.columns.labels.copy(),
            list(self.class_names), split=split, progress=self.progress, progress_format="export %p%{eta}",
            status=lambda line: self._say(line, line.startswith("failed")),
            on_result=lambda written: self._say(f"{written:,} of {n:,} images written to {folder}"
                                                f"{'' if written == n else ' (stopped)'}", False))

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
            self.export_folder(folder)

    def shutdown(self) -> None:
        self.tasks.shutdown()


def _class_position(names: list[str], name: str) -> int:
    """The class box's row of the class `name` (any case; 0, "all classes", when it is not one of `names`)."""
    lower = [n.lower() for n in names]
    return 1 + lower.index(name.lower()) if name and name.lower() in lower else 0


def _file_name(path: str | None) -> str:
    from pathlib import Path

    return Path(path).name if path else "the shown VAE"
