"""The latent map: a split's latent means (or all splits', 70,000 for MNIST) in 2-D (PCA at once, UMAP when its worker

is done), explorable by mouse.

Hover a point: its image and reconstruction float next to the cursor. Click a point: the side view shows the image,
its reconstruction, its latent vector and its nearest neighbours in latent space. Click empty space: the latent under
the cursor (core.latent.positions.PositionMapper) is decoded, with its distance to the data and the data nearest to it
in latent space. Left-drag sweeps: decodes follow the mouse (rate-limited, latest position wins); middle-drag pans, the
wheel zooms. The map's title and status always name the projection shown (PCA while UMAP computes).

Selection: the lasso or rectangle tool (Shift+drag is always the lasso), a search (a class name or an image index;
Enter selects what it found) or "N worst reconstructions" fills the grid beside the map (captions: class and
reconstruction error; sortable). The selection is the app's (`state.selection`): "Send to" hands it to the Sampler,
Interpolation or Denoise/Enhance panels through the state, and it exports as an indices CSV or a grid PNG.

UMAP / t-SNE settings sit in the second row; PCA names the variance each axis explains; a 2-D latent (or a 2-D layer)
is shown on its own axes, unprojected. A hierarchical VAE's map projects one latent layer at a time (the "layer" box).

Encoding (through core.latent.map_data's disk cache) and UMAP run as the panel's tasks
(`explorer.panels.tasks.PanelTasks`); the GUI thread only decodes single images (~2 ms).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled, signals_blocked

from core.latent.encoding import Latents, decode_latents, nearest_neighbours
from core.latent.map_data import (
    ALL_SPLITS,
    MapData,
    encode_for_map,
    latent_layers,
)
from core.latent.positions import PositionMapper
from core.latent.projection import ProjectionSettings, cached_projection, model_key, pca_2d_with_variance
from explorer.handoffs import Endpoint, InterpolationEndpoints
from explorer.panel import Panel
from explorer.panels.map_selection import MapSelection
from explorer.panels.shown import WorkWhenShown
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid, array_to_qimage
from explorer.widgets.latent_scatter import TOOLS, LatentScatter
from explorer.widgets.latent_widgets import PixelView
from explorer.widgets.selection_grid import SelectionGrid

SPLITS = ("test", "val", "train", "all")
PROJECTIONS = {"UMAP": "umap", "PCA": "pca", "t-SNE": "tsne"}
COLOUR_BY = ("class", "reconstruction error", "KL", "latent dimension")
FAR_FROM_DATA = 3.0   # distance (in typical neighbour spacings) beyond which a decode is called an extrapolation


def _project_job(loaded, mu: np.ndarray, method: str, split: str, seed: int, settings: ProjectionSettings | None = None,
                 progress=None, should_stop=None):
    """Runs on the worker thread (umap is imported there, never on the GUI thread)."""
    return cached_projection(mu, method, model=model_key(loaded), split=split, seed=seed, settings=settings,
                             progress=progress, should_stop=should_stop)


def _encode_job(loaded, splits, progress=None, should_stop=None) -> MapData | None:
    return encode_for_map(loaded, splits, batch_size=256, progress=progress, should_stop=should_stop)


class MapImages:
    """The map's images by map row, read from each split's uint8 tensor (no copy of a 60,000-image dataset)."""

    def __init__(self, splits: list[np.ndarray], split_of: np.ndarray, index: np.ndarray) -> None:
        self.splits, self.split_of, self.index = splits, split_of, index

    def __getitem__(self, rows) -> np.ndarray:
        if np.ndim(rows) == 0:
            r = int(rows)
            return np.ascontiguousarray(self.splits[int(self.split_of[r])][int(self.index[r])])
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            first = self.splits[0]
            return np.zeros((0, *first.shape[1:]), np.uint8)
        out = np.empty((len(rows), *self.splits[0].shape[1:]), np.uint8)
        which = self.split_of[rows]
        for k, images in enumerate(self.splits):
            at = np.flatnonzero(which == k)
            if len(at):
                out[at] = images[self.index[rows[at]]]
        return out


class LatentMapPanel(WorkWhenShown, Panel, QWidget):
    title = "Latent map"
    uses = ("vae",)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.latents: Latents | None = None
        self.data: MapData | None = None      # the latents with where each came from (split, index)
        self.xy: np.ndarray | None = None
        self.projection_shown = ""            # "pca" / "umap" / "tsne": what the scatter shows now
        self.mapper: PositionMapper | None = None
        self.selected: int | None = None      # index of the clicked data point
        self.query: np.ndarray | None = None  # last decoded empty-space position
        self._images: MapImages | None = None
        self._split = "test"
        self.axis_labels: tuple[str, str] | None = None
        self._split_images: list[np.ndarray] = []
        self.tasks = PanelTasks(self)         # "encode" and "projection"; a reload cancels both, the newest wins
        self.tasks.busyChanged.connect(self._update_cancel)
        self._current_z: tuple[np.ndarray, int] | None = None
        self._stats = ""                      # the encoding's mean KL and reconstruction error, for the status
        self.map_vae = None                   # the LoadedModel the map was encoded with (decodes use it too)
        self.map_dataset = None               # the Dataset it was encoded from
        self.newer_snapshot = None            # a newer snapshot of its run that arrived while a projection ran
        self.selection_tools = MapSelection(self)   # lasso / rectangle / search / worst N, the grid, its exports
        self._build()
        # Drags decode at most every 16 ms, always ending on the latest position (superqt's throttle).
        self._sweep = qthrottled(self._decode_at, 16, parent=self)
        state.vaeChanged.connect(self._on_vae_changed)
        state.datasetChanged.connect(self.reload)
        self.reload()

    # ---- layout -----------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.split_box = QComboBox()
        self.split_box.addItems(SPLITS)
        self.split_box.currentTextChanged.connect(lambda _: self.reload())
        self.method_box = QComboBox()
        self.method_box.addItems(list(PROJECTIONS))
        self.method_box.currentTextChanged.connect(lambda _: self._start_projection())
        self.layers: tuple[tuple[str, slice], ...] = ()
        self.colour_box = QComboBox()
        self.colour_box.addItems(COLOUR_BY)
        self.colour_box.currentTextChanged.connect(lambda _: self._apply_colours())
        self.dim_box = QSpinBox()
        self.dim_box.setPrefix("dim ")
        self.dim_box.valueChanged.connect(lambda _: self._apply_colours())
        self.decode_as = QComboBox()
        self.decode_as.setToolTip("class used to decode positions in empty space (the conditional VAE needs one)")
        self.decode_as.currentIndexChanged.connect(lambda _: self._redecode())
        self.shade_box = QCheckBox("shade far from data")
        self.shade_box.setChecked(True)
        self.shade_box.toggled.connect(lambda on: self.scatter.set_shade_visible(on))
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window

        top = QHBoxLayout()
        for w in (QLabel("split"), self.split_box, QLabel("map"), self.method_box, QLabel("colour by"),
                  self.colour_box, self.dim_box, QLabel("decode as"), self.decode_as, self.progress, self.cancel_btn):
            top.addWidget(w)
        top.addStretch(1)
        second = self._build_second_row()

        self.scatter = LatentScatter()
        self.scatter.sweptTo.connect(self._on_sweep)
        self.scatter.clickedAt.connect(self.click_view)
        self.scatter.hovered.connect(self._on_hover)
        self.hover_index: int | None = None

        # side view
        self.image_view = PixelView(minimum=96)
        self.recon_view = PixelView(minimum=96)
        self.info = QLabel("Click a point, or empty space to decode the latent there.")
        self.info.setWordWrap(True)
        self.bars = pg.PlotWidget()
        self.bars.setBackground("w")
        self.bars.setMaximumHeight(140)
        self.bars.setMouseEnabled(x=False, y=False)
        self.bars.setLabel("bottom", "latent dimension")
        self._bar_item = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#1f77b4")
        self.bars.addItem(self._bar_item)
        self.neighbours = ImageGrid()
        self.neighbours.setMinimumHeight(80)
        self.neighbours.clicked.connect(self._on_neighbour_clicked)
        self._neighbour_ids = np.zeros(0, dtype=np.int64)
        self.send_btn = QPushButton("Send to interpolation")
        self.send_btn.setEnabled(False)
        self.send_btn.clicked.connect(self._send)
        self.scatter.outlined.connect(self.selection_tools.select_outline)
        self.selection_tools.grid.clickedRow.connect(self.select_point)

        pair = QHBoxLayout()
        pair.addWidget(self.image_view)
        pair.addWidget(self.recon_view)
        side = QVBoxLayout()
        side.addLayout(pair)
        side.addWidget(self.info)
        side.addWidget(self.bars)
        self.neighbours_title = QLabel("nearest neighbours in latent space")
        self.neighbours_title.setWordWrap(True)
        side.addWidget(self.neighbours_title)
        side.addWidget(self.neighbours, 1)
        side.addWidget(self.send_btn)
        side_w = QWidget()
        side_w.setLayout(side)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(side_w, "point")
        self.side_tabs.addTab(self.selection_tools.grid, "selection")
        split = QSplitter()
        split.addWidget(self.scatter)
        split.addWidget(self.side_tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([700, 320])
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

    def _build_second_row(self) -> QHBoxLayout:
        """Projection settings, the latent layer, the drag tool, the search box and the worst reconstructions."""
        defaults = ProjectionSettings()
        self.neighbours_box = QSpinBox()
        self.neighbours_box.setRange(2, 200)
        self.neighbours_box.setValue(defaults.n_neighbors)
        self.neighbours_box.setToolTip("UMAP n_neighbors: larger keeps more of the global structure")
        self.min_dist_box = QDoubleSpinBox()
        self.min_dist_box.setRange(0.0, 1.0)
        self.min_dist_box.setSingleStep(0.05)
        self.min_dist_box.setValue(defaults.min_dist)
        self.min_dist_box.setToolTip("UMAP min_dist: smaller packs similar points more tightly")
        self.perplexity_box = QDoubleSpinBox()
        self.perplexity_box.setRange(2.0, 500.0)
        self.perplexity_box.setValue(defaults.perplexity)
        self.perplexity_box.setToolTip("t-SNE perplexity: the effective number of neighbours")
        for box, method in ((self.neighbours_box, "umap"), (self.min_dist_box, "umap"),
                            (self.perplexity_box, "tsne")):
            box.setKeyboardTracking(False)       # typing "30" projects once, not for "3" and then "30"
            box.valueChanged.connect(lambda _v, m=method: self._settings_changed(m))
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("the latent layer the map projects (a hierarchical VAE has several)")
        self.layer_box.currentIndexChanged.connect(lambda _: self._layer_changed())
        self.layer_label = QLabel("layer")
        self.tool_box = QComboBox()
        self.tool_box.addItems(TOOLS)
        self.tool_box.setToolTip("what a left-drag does: decode under the cursor, or select with a lasso or a "
                                 "rectangle (Shift+drag is always the lasso)")
        self.tool_box.currentTextChanged.connect(self.scatter_tool)
        self._setting_labels = {}
        row = QHBoxLayout()
        for text, box in (("neighbours", self.neighbours_box), ("min dist", self.min_dist_box),
                          ("perplexity", self.perplexity_box)):
            label = QLabel(text)
            self._setting_labels[box] = label
            row.addWidget(label)
            row.addWidget(box)
        tools = self.selection_tools
        for w in (self.layer_label, self.layer_box, self.shade_box, QLabel("drag"), self.tool_box, tools.search,
                  QLabel("show"), tools.worst_n, tools.worst_btn):
            row.addWidget(w)
        self.layer_label.hide()
        self.layer_box.hide()
        self._show_settings()
        return row

    def scatter_tool(self, tool: str) -> None:
        self.scatter.set_tool(tool)

    def projection_settings(self) -> ProjectionSettings:
        return ProjectionSettings(n_neighbors=self.neighbours_box.value(), min_dist=round(self.min_dist_box.value(), 3),
                                  perplexity=self.perplexity_box.value())

    def _show_settings(self) -> None:
        """Only the chosen method's settings are shown."""
        method = PROJECTIONS[self.method_box.currentText()]
        for box, uses in ((self.neighbours_box, "umap"), (self.min_dist_box, "umap"), (self.perplexity_box, "tsne")):
            box.setVisible(method == uses)
            self._setting_labels[box].setVisible(method == uses)

    def _settings_changed(self, method: str) -> None:
        if PROJECTIONS[self.method_box.currentText()] == method:
            self._start_projection()

    # ---- loading ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)encode the chosen split with the current VAE; called on vaeChanged / datasetChanged / split change."""
        self.newer_snapshot = None
        if self.defer_while_hidden():
            return
        self.tasks.cancel_all()
        self.map_vae = None
        self._split = self.split_box.currentText()
        self.latents = self.data = self.xy = self.mapper = self._images = None
        self.selected, self.query, self._current_z = None, None, None
        self.selection_tools.reset()
        self.scatter.clear_points()
        self.scatter.set_title("")
        self.scatter.set_axes(None)
        self._clear_side_view()
        self._fill_decode_as()
        names = ALL_SPLITS if self._split == "all" else (self._split,)
        splits = []
        for name in names:
            found = self.state.split_to_encode(name)
            if isinstance(found, str):
                self.status.setText(found)
                return
            if len(found[1]):
                splits.append((name, found[1]))
        if not splits:
            self.status.setText(f"the {self._split} split has no images; choose another split")
            return
        vae = found[0]
        self.map_vae = vae
        self.map_dataset = self.state.dataset   # the dataset whose images the map's rows index
        self._fill_layers()
        self._split_images = [s.images.permute(0, 2, 3, 1).cpu().numpy() for _, s in splits]   # views, no copies
        total = sum(len(s) for _, s in splits)
        self.status.setText(f"encoding {total:,} {self._split} images…")
        self.tasks.start("encode", _encode_job, vae, splits, on_result=self._on_encoded,
                         progress=self.progress, progress_format="encode %p%{eta}", status=self.status.setText,
                         on_finished=self._task_done)

    def _fill_layers(self) -> None:
        """The layer box lists a hierarchical VAE's latent layers (hidden for a one-layer VAE)."""
        self.layers = latent_layers(self.map_vae.model)
        with signals_blocked(self.layer_box):
            self.layer_box.clear()
            for name, cols in self.layers:
                self.layer_box.addItem(f"{name} ({cols.stop - cols.start}-D)")
        many = len(self.layers) > 1
        self.layer_box.setVisible(many)
        self.layer_label.setVisible(many)

    def layer_columns(self) -> slice | None:
        """The columns of the flat latent the map projects (None: all of them)."""
        if self.map_vae is None or len(self.layers) <= 1:
            return None
        return self.layers[max(0, self.layer_box.currentIndex())][1]

    def _projected_mu(self) -> np.ndarray:
        cols = self.layer_columns()
        return self.latents.mu if cols is None else np.ascontiguousarray(self.latents.mu[:, cols])

    def _layer_changed(self) -> None:
        if self.latents is not None:
            self._show_and_project()

    def _fill_decode_as(self) -> None:
        with signals_blocked(self.decode_as):
            self.decode_as.clear()
            vae = self.state.vae
            if vae is not None and vae.model.num_classes:
                self.decode_as.addItem("nearest class")
                self.decode_as.addItems(list(vae.meta.class_names))
                self.decode_as.setEnabled(True)
            else:
                self.decode_as.addItem("(unconditional)")
                self.decode_as.setEnabled(False)

    def _on_encoded(self, data: MapData | None) -> None:
        if data is None:
            return
        self.data = data
        lat = self.latents = data.latents
        self._images = MapImages(self._split_images, data.split_of, data.index_in_split)
        self.dim_box.setRange(0, lat.mu.shape[1] - 1)
        self._stats = f"mean KL {lat.kl.mean():.2f} nats, mean reconstruction error {lat.recon_error.mean():.4f}"
        self._show_and_project()

    def _show_and_project(self) -> None:
        """PCA (or the 2-D latent) at once; UMAP / t-SNE, when chosen, on the worker."""
        if PROJECTIONS[self.method_box.currentText()] != "pca" and not self.is_two_dimensional():
            self._show_initial_map()      # _start_projection shows PCA / the 2-D latent itself
        self._start_projection()

    def is_two_dimensional(self) -> bool:
        """The projected latent (or layer) has two dimensions: it is shown as it is."""
        return self.latents is not None and self._projected_mu().shape[1] == 2

    def _show_initial_map(self) -> None:
        """PCA at once (or the latent itself when it is 2-D)."""
        mu = self._projected_mu()
        if mu.shape[1] == 2:
            layer = "" if self.layer_columns() is None else f"{self.layers[self.layer_box.currentIndex()][0]} "
            self.axis_labels = (f"{layer}z0", f"{layer}z1")
            self._set_xy(mu.astype(np.float32), "latent")
            return
        xy, explained = pca_2d_with_variance(mu)
        self.axis_labels = (f"PC1 ({explained[0]:.1%} of variance)", f"PC2 ({explained[1]:.1%} of variance)")
        self._set_xy(xy, "pca")

    def _start_projection(self) -> None:
        self._show_settings()
        method = PROJECTIONS[self.method_box.currentText()]
        if self.latents is None:
            return
        self.tasks.cancel("projection")
        self.method_box.setEnabled(not self.is_two_dimensional())
        if method == "pca" or self.is_two_dimensional():
            self._show_initial_map()    # also says "PCA" wherever the old projection was named
            return
        cols = self.layer_columns()
        key = self.data.describe() if cols is None else f"{self.data.describe()}-layer{cols.start}-{cols.stop}"
        settings = self.projection_settings()
        self.tasks.start("projection", _project_job, self.map_vae, self._projected_mu(), method, key, 0,
                         settings=settings,
                         on_result=lambda xy, m=method: self._on_projected(xy, m), progress=self.progress,
                         progress_format=f"{method} %p%{{eta}}", status=self.status.setText,
                         on_finished=self._projection_done)
        self._label_projection()     # what is shown stays, named as what it is, until the new one is ready

    def _on_projected(self, xy: np.ndarray | None, method: str) -> None:
        if xy is None or self.latents is None:
            return
        self._set_xy(xy, method)

    def projection_name(self) -> str:
        """The shown projection as the "map" box names it ("" when nothing is shown)."""
        names = {**{v: k for k, v in PROJECTIONS.items()}, "latent": "2-D latent"}
        return names.get(self.projection_shown, "") if self.xy is not None else ""

    def _label_projection(self) -> None:
        """Name the projection shown in the map's title, the status and the progress bar."""
        shown = self.projection_name()
        if not shown:
            return
        n = len(self.xy)
        what = self.data.describe() if self.data is not None else self._split
        cols = self.layer_columns()
        if cols is not None:
            what += f", layer {self.layers[self.layer_box.currentIndex()][0]}"
        self.scatter.set_title(f"{shown} of {n} {what} latents")
        wanted = self.method_box.currentText()
        if self.tasks.running("projection") and wanted != shown:
            text = f"{shown} shown; computing {wanted} in the background…"
        else:
            text = f"{shown} map of {n} {what} latents; {self._stats}"
        newer = self.newer_snapshot
        if newer is not None and self.map_vae is not None:
            self.scatter.set_title(f"{shown} of {n} {what} latents (epoch {self.map_vae.epoch})")
            text += (f" — epoch {self.map_vae.epoch}; a newer snapshot (epoch {newer.epoch}) arrived: refreshing "
                     "when this map is done")
        self.status.setText(text)
        if not self.tasks.busy():
            self.progress.setFormat(f"{shown} shown")

    def _on_vae_changed(self) -> None:
        """Another model reloads the map. A newer snapshot of the same run (training, with the map following it)
        while UMAP / t-SNE computes does not throw that work away: the map is finished and marked, then reloaded
        once for the newest snapshot (later snapshots meanwhile join that one reload)."""
        newer = self.state.vae
        if (self.state.snapshot_update and newer is not None and self.map_vae is not None
                and self.tasks.running("projection")):
            self.newer_snapshot = newer
            self._label_projection()
            return
        self.reload()

    def _projection_done(self, stopped: bool) -> None:
        self._task_done(stopped)
        if self.newer_snapshot is not None:
            self.reload()        # once, for the newest snapshot

    def _map_model(self):
        return None if self.map_vae is None else self.map_vae.model

    def _task_done(self, _stopped: bool) -> None:
        if not self.tasks.running("encode") and not self.tasks.running("projection"):
            shown = self.projection_name()
            self.progress.setFormat(f"{shown} shown" if shown else "idle")

    def _update_cancel(self) -> None:
        self.cancel_btn.setEnabled(self.tasks.busy())

    def cancel(self) -> None:
        """Stop the running encode / projection (the map keeps what it shows, e.g. PCA)."""
        self.tasks.cancel_all()
        shown = self.projection_name()
        self.status.setText("cancelled; " + (f"showing {shown}" if shown else "nothing encoded"))

    def shutdown(self) -> None:
        self._sweep.cancel()
        self.tasks.shutdown()

    # ---- drawing ----------------------------------------------------------------------------------------------------
    def _set_xy(self, xy: np.ndarray, method: str) -> None:
        lat = self.latents
        assert lat is not None
        self.xy = np.asarray(xy, dtype=np.float32)
        self.projection_shown = method
        self.mapper = PositionMapper(self.xy, lat.mu, lat.labels, columns=self.layer_columns())
        names = self.map_vae.meta.class_names if self.map_vae is not None else ()
        self.scatter.set_points(self.xy, lat.labels, names, self.mapper.tree)
        self.scatter.set_axes(*(self.axis_labels if method in ("pca", "latent") and self.axis_labels else (None,)))
        self._apply_colours()
        self._update_shading()
        self.scatter.mark_point(self.selected)
        self.scatter.mark_selection(self.selection_tools.rows)
        self.scatter.mark_found(self.selection_tools.found)
        if self.query is not None:      # the decoded position belonged to the old layout's coordinates
            self.query = None
            self.scatter.mark_query(None)
            self._clear_side_view()
        self._label_projection()

    def _update_shading(self) -> None:
        if self.mapper is None or self.xy is None:
            return
        lo, hi = self.xy.min(0), self.xy.max(0)
        pad = (hi - lo) * 1.0 + 1e-6          # wide margin: zooming out still shows shade, not a hard edge
        lo, hi = lo - pad, hi + pad
        d = self.mapper.distance_image((lo[0], hi[0]), (lo[1], hi[1]), size=256)
        alpha = np.clip((d - 1.0) / (FAR_FROM_DATA * 2), 0, 1) * 70
        rgba = np.zeros(d.shape + (4,), np.uint8)
        rgba[..., :3] = 90
        rgba[..., 3] = alpha.astype(np.uint8)
        self.scatter.set_shade(rgba, (lo[0], hi[0]), (lo[1], hi[1]), self.shade_box.isChecked())

    def colour_values(self) -> np.ndarray | None:
        """The per-point values the map is coloured by (None = by class)."""
        lat = self.latents
        mode = self.colour_box.currentText()
        self.dim_box.setVisible(mode == "latent dimension")
        if lat is None or mode == "class":
            return None
        if mode == "reconstruction error":
            return lat.recon_error
        if mode == "KL":
            return lat.kl
        return lat.mu[:, min(self.dim_box.value(), lat.mu.shape[1] - 1)]

    def _apply_colours(self) -> None:
        self.scatter.set_colour_values(self.colour_values())

    # ---- mouse ------------------------------------------------------------------------------------------------------
    def _on_hover(self, pos: QPointF | None) -> None:
        i = None if pos is None else self.scatter.point_near(pos)
        self.hover_index = i
        if i is None:
            self.scatter.hide_hover()
            return
        pair = np.concatenate([self._images[i], self._reconstruct(i)], axis=1)
        self.scatter.show_hover(array_to_qimage(pair), pos)

    def click_view(self, pos: QPointF) -> None:
        """A click at a view position: select the point there, or decode the empty space."""
        i = self.scatter.point_near(pos)
        if i is not None:
            self.select_point(i)
        else:
            self._sweep.cancel()
            self._decode_at(pos)

    def _on_sweep(self, pos: QPointF, finished: bool) -> None:
        self._sweep(pos)
        if finished:
            self._sweep.flush()

    def _reconstruct(self, i: int) -> np.ndarray:
        lat = self.latents
        return decode_latents(self._map_model(), lat.mu[i:i + 1], int(lat.labels[i]))[0]

    def select_point(self, i: int) -> None:
        lat = self.latents
        if lat is None or self.xy is None:
            return
        self.selected = int(i)
        self.query = None
        self.scatter.mark_query(None)
        self.scatter.mark_point(self.selected)
        names = self.map_vae.meta.class_names
        label = int(lat.labels[i])
        split, index = self.data.origin(i)
        self.image_view.set_image(self._images[i], f"{split} #{index}: {names[label]}")
        self.recon_view.set_image(self._reconstruct(i), f"recon (err {lat.recon_error[i]:.3f})")
        self._show_latent(lat.mu[i])
        self.info.setText(f"image {index} of {split}, class {names[label]}; KL {lat.kl[i]:.2f} nats")
        self._show_neighbours(nearest_neighbours(lat.mu, i, 8), f"nearest neighbours of {split} #{index} in "
                                                                "latent space")
        self._current_z = (lat.mu[i].copy(), label)
        self.send_btn.setEnabled(True)
        self.side_tabs.setCurrentIndex(0)
        self.state.imageSelected.emit(split, index)

    def _show_neighbours(self, ids: np.ndarray, title: str) -> None:
        lat, names = self.latents, self.map_vae.meta.class_names
        self._neighbour_ids = ids
        self.neighbours.set_images(self._images[ids], columns=4, captions=[names[int(lat.labels[j])] for j in ids])
        self.neighbours_title.setText(title)

    def _clear_side_view(self) -> None:
        """Nothing selected: no image, latent or neighbours left over from an earlier selection."""
        self._neighbour_ids = np.zeros(0, dtype=np.int64)
        self.neighbours.clear()
        self.neighbours_title.setText("nearest neighbours in latent space")
        self.image_view.set_image(None, "")
        self.recon_view.set_image(None, "")
        self._bar_item.setOpts(x=[], height=[], width=0.8)
        self.info.setText("Click a point, or empty space to decode the latent there.")
        self._current_z = None
        self.send_btn.setEnabled(False)

    def _on_neighbour_clicked(self, k: int) -> None:
        if 0 <= k < len(self._neighbour_ids):
            self.select_point(int(self._neighbour_ids[k]))

    def _decode_label(self, pos: np.ndarray) -> int:
        if self.decode_as.currentIndex() <= 0:
            return int(self.mapper.label_at(pos)[0]) if self.mapper.labels is not None else 0
        return self.decode_as.currentIndex() - 1

    def _decode_at(self, pos: QPointF) -> None:
        if self.mapper is None or self._map_model() is None:
            return
        p = np.array([[pos.x(), pos.y()]], dtype=np.float64)
        z = self.mapper.latent_at(p)[0]
        dist = float(self.mapper.distance_to_data(p)[0])
        conditional = self._map_model().num_classes > 0
        label = self._decode_label(p) if conditional else 0
        img = decode_latents(self._map_model(), z[None], label if conditional else None)[0]
        self.query = p[0]
        self.selected = None
        self.scatter.mark_point(None)
        self.scatter.mark_query(p[0])
        names = self.map_vae.meta.class_names
        far = dist > FAR_FROM_DATA
        self.image_view.set_image(None, "")
        self.recon_view.set_image(img, f"decoded as {names[label]}" if conditional else "decoded")
        self._show_latent(z)
        self.info.setText(f"position ({p[0, 0]:.2f}, {p[0, 1]:.2f}); distance to data {dist:.1f}x the typical "
                          f"spacing" + (" — FAR FROM DATA: this decode extrapolates" if far else ""))
        # the decoded point's own neighbours (never the previously clicked point's)
        d = np.linalg.norm(self.latents.mu - z[None], axis=1)
        k = min(8, len(d))
        near = np.argpartition(d, k - 1)[:k]
        self._show_neighbours(near[np.argsort(d[near], kind="stable")].astype(np.int64),
                              "data nearest to the decoded position in latent space")
        self._current_z = (z.copy(), label)
        self.send_btn.setEnabled(True)

    def _redecode(self) -> None:
        if self.query is not None:
            self._decode_at(QPointF(float(self.query[0]), float(self.query[1])))

    def _show_latent(self, z: np.ndarray) -> None:
        self._bar_item.setOpts(x=np.arange(len(z)), height=np.asarray(z, dtype=float), width=0.8)
        self.bars.enableAutoRange()

    def _send(self) -> None:
        """The latent in the side view to Interpolation (a hand-off through the state): a clicked image also says
        which image it is, so an Interpolation showing another model encodes that image with its own model."""
        if self._current_z is None:
            return
        z, label = self._current_z
        where = {}
        if self.selected is not None and self.data is not None:
            split, index = self.data.origin(self.selected)
            where = {"split": split, "index": int(index), "dataset": self.map_dataset}
        end = Endpoint(z.copy(), int(label), self._map_model(), **where)
        self.state.hand_off(InterpolationEndpoints((end,), "the latent map's " + ("image" if where else "position")))

    # ---- selection (explorer/panels/map_selection.py) ----------------------------------------------------------------
    def set_selection(self, rows: np.ndarray, description: str) -> None:
        self.selection_tools.set_rows(rows, description)

    def select_outline(self, outline: np.ndarray) -> None:
        self.selection_tools.select_outline(outline)

    def send_selection(self, target: str) -> None:
        self.selection_tools.send(target)

    def image_of(self, rows: np.ndarray | int) -> np.ndarray:
        """The dataset images of map rows `rows` (uint8 HWC), read from their splits."""
        return self._images[rows]

    @property
    def selection_grid(self) -> SelectionGrid:
        return self.selection_tools.grid

    @property
    def selection_rows(self) -> np.ndarray:
        return self.selection_tools.rows

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_png(self, path: str) -> None:
        if not self.grab().save(str(path), "PNG"):
            from core.errors import UserError

            raise UserError(f"could not write {path}; choose a writable folder")
