"""The latent map's selection tools: what is selected on the map and everything done with it.

The lasso or rectangle (a finished drag on the scatter), the search box (a class name or an image index: rings what it
finds; Enter selects it) and "N worst reconstructions" select map rows; the selection grid beside the map shows them
(sortable), they ring on the scatter, and they are the app's selection (`state.selection`, in the grid's order) that
"Send to" hands to the Sampler, Interpolation or Denoise / Enhance and that exports as an indices CSV or a grid PNG.

It reads the map model (its data, positions, images and model), rings on the scatter, and owns only the selection;
the panel places its widgets (`search`, `worst_n`, `worst_btn`, `grid`) and shows what it says (`message`) and how
many are selected (`counted`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QLineEdit, QPushButton, QSpinBox, QWidget

from core.errors import UserError
from core.images import image_grid, save_png
from core.latent.map_data import find_points, worst_reconstructions, write_selection_csv
from core.latent.positions import points_in_polygon
from explorer.panels.latent_map_model import MapModel
from explorer.selection import ImageSelection
from explorer.state import AppState
from explorer.widgets.latent_scatter import LatentScatter
from explorer.widgets.selection_grid import SelectionGrid

PNG_LONGEST_SIDE = 8192   # an exported grid PNG is scaled up (small digits) but never past this many pixels
SELECT_FIRST = "select some points first (lasso, search or worst reconstructions)"


class MapSelection(QObject):
    message = Signal(str)     # a line for the panel's status
    counted = Signal(int)     # how many points are selected now (0: none); the grid is shown when there are some

    def __init__(self, model: MapModel, scatter: LatentScatter, state: AppState, parent: QWidget) -> None:
        super().__init__(parent)
        self.model, self.scatter, self.state, self._parent = model, scatter, state, parent
        self.rows = np.zeros(0, np.int64)     # the map rows selected (lasso, search, worst N)
        self.found = np.zeros(0, np.int64)    # the rows the search box finds (orange rings)
        self.description = ""
        self.search = QLineEdit()
        self.search.setPlaceholderText("find: class or index (e.g. 7, train 123)")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(120)
        self.search.textChanged.connect(self.find)
        self.search.returnPressed.connect(self.select_found)
        self.worst_n = QSpinBox()
        self.worst_n.setRange(1, 100_000)
        self.worst_n.setValue(50)
        self.worst_btn = QPushButton("worst reconstructions")
        self.worst_btn.setToolTip("select the N images the VAE reconstructs worst")
        self.worst_btn.clicked.connect(lambda: self.select_worst(self.worst_n.value()))
        self.grid = SelectionGrid()
        self.grid.sort_box.currentIndexChanged.connect(lambda _: self.publish())
        self.grid.sendTo.connect(self.send)
        self.grid.exportCsv.connect(self._ask_export_csv)
        self.grid.exportPng.connect(self._ask_export_png)
        self.grid.cleared.connect(lambda: self.set_rows(np.zeros(0, np.int64), ""))
        model.positionsChanged.connect(self.draw)

    def draw(self) -> None:
        """Ring the selection and the search's finds on freshly drawn positions."""
        self.scatter.mark_selection(self.rows)
        self.scatter.mark_found(self.found)

    # ---- selecting --------------------------------------------------------------------------------------------------
    def select_outline(self, outline: np.ndarray) -> None:
        """A finished lasso / rectangle (map coordinates): select the visible points inside it."""
        xy = self.model.xy
        if xy is None:
            return
        rows = points_in_polygon(xy, outline)
        rows = rows[self.scatter.visible_mask()[rows]]     # a class hidden in the legend is not selected
        self.set_rows(rows, "lasso" if len(outline) > 4 else "rectangle")

    def select_worst(self, n: int) -> None:
        """Select the n worst reconstructions, worst first."""
        if self.model.data is not None:
            rows = worst_reconstructions(self.model.data, n)
            self.set_rows(rows, f"{len(rows)} worst reconstructions")

    def find(self, text: str) -> None:
        """Ring the points the search names (a class, an index); Enter selects them."""
        if self.model.data is None or self.model.map_vae is None:
            return
        self.found = find_points(text, self.model.data, self.model.class_names)
        self.scatter.mark_found(self.found)
        if text.strip():
            self.message.emit(f"search {text.strip()!r}: {len(self.found):,} found"
                              + ("; Enter selects them" if len(self.found) else ""))

    def select_found(self) -> None:
        if len(self.found):
            self.set_rows(self.found, f"search {self.search.text().strip()!r}")

    def set_rows(self, rows: np.ndarray, description: str) -> None:
        """Make map rows `rows` the selection: rings on the map, the grid beside it, and the app's selection."""
        self.rows = np.asarray(rows, dtype=np.int64)
        self.scatter.mark_selection(self.rows)
        self.description = description
        lat = self.model.latents
        if len(self.rows) == 0 or lat is None:
            self.forget()
            return
        self.grid.set_selection(self.rows, self.model.image_of, lat.labels, lat.recon_error,
                                self.model.class_names, what=f"selected ({description})")
        self.counted.emit(len(self.rows))
        self.publish()

    def reset(self) -> None:
        """The map's rows are about to mean other latents (another model, dataset or split)."""
        self.rows = self.found = np.zeros(0, np.int64)
        self.forget()

    def forget(self) -> None:
        """No selection, everywhere it shows (grid, tab title, the app's selection); hand-offs already sent keep
        their images."""
        self.grid.clear()
        self.counted.emit(0)
        state = self.state
        if state.selection is not None and state.selection.source == "latent map":
            state.set_selection(None)

    def publish(self) -> None:
        """The app's selection, in the grid's order (what "first two" and the exports mean)."""
        data = self.model.data
        if len(self.rows) == 0 or data is None:
            return
        rows = self.grid.sorted_rows()
        self.state.set_selection(ImageSelection(
            source="latent map", splits=tuple(data.split_names[int(k)] for k in data.split_of[rows]),
            indices=data.index_in_split[rows].copy(), labels=data.latents.labels[rows].copy(),
            latents=data.latents.mu[rows].copy(), description=self.description,
            model=self.model.model, dataset=self.model.map_dataset))

    def send(self, target: str) -> None:
        self.publish()
        self.state.send_selection(target)

    # ---- exports ----------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> None:
        """The selection's split, index, class and errors, one line per image, in the grid's order."""
        if self.model.data is None or len(self.rows) == 0:
            raise UserError(SELECT_FIRST)
        write_selection_csv(path, self.model.data, self.grid.sorted_rows(), self.model.class_names)

    def export_png(self, path: str) -> tuple[int, int]:
        """All selected images as one grid PNG (core.images), in the grid's order; returns (columns, scale)."""
        if self.model.data is None or len(self.rows) == 0:
            raise UserError(SELECT_FIRST)
        images = self.model.image_of(self.grid.sorted_rows())
        columns = int(np.ceil(np.sqrt(len(images))))
        grid = image_grid(images, columns, padding=1, pad_value=255)
        scale = max(1, min(64 // max(images.shape[1:3]), PNG_LONGEST_SIDE // max(grid.shape[:2])))
        try:
            save_png(grid, str(path), scale=scale)
        except OSError as exc:
            raise UserError(f"could not write {path}: {exc}; choose a writable folder") from exc
        return columns, scale

    def _ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._parent, "Export the selection's indices", "selection.csv",
                                              "CSV (*.csv)")
        if path:
            self._guarded(self.export_csv, path)

    def _ask_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._parent, "Export the selection as an image grid", "selection.png",
                                              "PNG (*.png)")
        if path:
            self._guarded(self.export_png, path)

    def _guarded(self, fn, path: str) -> None:
        try:
            fn(path)
            self.message.emit(f"saved {path}")
        except UserError as exc:
            from explorer.widgets.dialogs import show_error

            self.message.emit(f"failed: {exc}")
            show_error(self._parent, str(exc), "")
