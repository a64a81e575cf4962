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

The prior's holes: "prior" overlays where a sampler's z (N(0, I), the class mixture or the diffusion prior) land on
the map, as a density layer of its own colour, with the per-class hole score beside the map (latent_map_prior.py).

A VQ-VAE has no latent per image: its map is its codebook, one point per code vector, sized and coloured by how the
split uses it (latent_map_codes.py).

UMAP / t-SNE settings sit in the second row; PCA names the variance each axis explains; a 2-D latent (or a 2-D layer)
is shown on its own axes, unprojected. A hierarchical VAE's map projects one latent layer at a time (the "layer" box).

The panel is a composition of small views over one map model (latent_map_model.py: latents, positions, mapper,
clicked / hovered rows): the map view (latent_map_view.py: projection settings, scatter, colouring), the inspector
(latent_map_inspector.py), the position decoder (latent_map_decoder.py), the selection tools (map_selection.py) and
the prior overlay (latent_map_prior.py). The panel itself loads: encoding (through core.latent.map_data's disk cache)
and UMAP run as its tasks (`explorer.panels.tasks.PanelTasks`); the GUI thread only decodes single images (~2 ms).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.latent.map_data import ALL_SPLITS, MapData, encode_for_map, latent_layers
from core.latent.projection import ProjectionSettings, cached_projection, model_key, pca_2d_with_variance
from explorer.panel import Panel
from explorer.panels.latent_map_codes import CodebookMap
from explorer.panels.latent_map_decoder import PositionDecoder
from explorer.panels.latent_map_inspector import MapInspector
from explorer.panels.latent_map_model import MapImages, MapModel
from explorer.panels.latent_map_prior import PriorOverlay
from explorer.panels.latent_map_view import COLOUR_BY, FAR_FROM_DATA, PROJECTIONS, SPLITS, MapView
from explorer.panels.map_selection import MapSelection
from explorer.panels.shown import WorkWhenShown
from explorer.panels.tasks import PanelTasks
from explorer.settings import Persisted
from explorer.state import AppState
from explorer.widgets.flow_toolbar import flow_toolbar

__all__ = ["COLOUR_BY", "FAR_FROM_DATA", "PROJECTIONS", "SPLITS", "LatentMapPanel", "MapImages"]


def _project_job(loaded, mu: np.ndarray, method: str, split: str, seed: int, settings: ProjectionSettings | None = None,
                 progress=None, should_stop=None):
    """Runs on the worker thread (umap is imported there, never on the GUI thread)."""
    return cached_projection(mu, method, model=model_key(loaded), split=split, seed=seed, settings=settings,
                             progress=progress, should_stop=should_stop)


def _encode_job(loaded, splits, progress=None, should_stop=None) -> MapData | None:
    return encode_for_map(loaded, splits, batch_size=256, progress=progress, should_stop=should_stop)


class _Part:
    """A name of the panel for a value one of its parts holds (`panel.xy` is `panel.model.xy`): what tests, the
    screenshot tool and the benches read, kept while the values moved into the map model and the views."""

    def __init__(self, part: str, name: str | None = None) -> None:
        self.part, self.name = part, name

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    def __get__(self, panel, owner=None):
        return self if panel is None else getattr(getattr(panel, self.part), self.name)

    def __set__(self, panel, value) -> None:
        setattr(getattr(panel, self.part), self.name, value)


class LatentMapPanel(WorkWhenShown, Panel, QWidget):
    title = "Latent map"
    uses = ("vae",)

    # the map model's values and the views' state, under the names the panel always had
    latents, data, xy, mapper, map_vae, map_dataset = (_Part("model") for _ in range(6))
    selected, query, projection_shown, axis_labels, hover_index, layers = (_Part("model") for _ in range(6))
    _images, _split_images = _Part("model", "images"), _Part("model", "split_images")
    _neighbour_ids, _current_z = _Part("inspector", "neighbour_ids"), _Part("inspector", "current_z")
    selection_rows, selection_grid = _Part("selection_tools", "rows"), _Part("selection_tools", "grid")

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.model = MapModel(self)
        self.tasks = PanelTasks(self)         # "encode", "projection" and "prior"; a reload cancels them all
        self.tasks.busyChanged.connect(lambda: self.cancel_btn.setEnabled(self.tasks.busy()))
        self.map_view = MapView(self.model, self)
        box = self.map_view.method_box    # the method chosen last time (explorer/settings.py), before the first map
        Persisted(state.settings, "latent_map.projection", "umap", get=self.map_view.method, owner=box,
                  set_=lambda m: box.setCurrentText({v: t for t, v in PROJECTIONS.items()}.get(m, "UMAP")),
                  changed=box.currentTextChanged)
        self.inspector = MapInspector(self.model, state, self)
        self.decoder = PositionDecoder(self.model, self.map_view.scatter, self.inspector, self)
        self.selection_tools = MapSelection(self.model, self.map_view.scatter, state, self)
        self.prior_overlay = PriorOverlay(self.model, self.map_view.scatter, self.tasks, state, self)
        self.newer_snapshot = None            # a newer snapshot of its run that arrived while a projection ran
        self._split = "test"
        self._name_parts()
        self._build()
        self._connect()
        self.reload()

    def _name_parts(self) -> None:
        """The views' widgets and actions under the panel's own names (tests and scripts use them)."""
        v, ins, dec, sel = self.map_view, self.inspector, self.decoder, self.selection_tools
        self.scatter, self.split_box, self.method_box, self.colour_box = v.scatter, v.split_box, v.method_box, \
            v.colour_box
        self.dim_box, self.shade_box, self.tool_box, self.layer_box = v.dim_box, v.shade_box, v.tool_box, v.layer_box
        self.neighbours_box, self.min_dist_box, self.perplexity_box = v.neighbours_box, v.min_dist_box, \
            v.perplexity_box
        self.colour_values, self._on_hover, self.projection_settings = v.colour_values, v._on_hover, \
            v.projection_settings
        self.image_view, self.recon_view, self.info, self.bars = ins.image_view, ins.recon_view, ins.info, ins.bars
        self.neighbours, self.neighbours_title, self.send_btn, self._bar_item = ins.neighbours, \
            ins.neighbours_title, ins.send_btn, ins.bar_item
        self.select_point, self.decode_as, self._sweep = ins.show_point, dec.decode_as, dec.sweep
        self.click_view, self._on_sweep = dec.click_view, dec.on_sweep
        self.set_selection, self.select_outline, self.send_selection = sel.set_rows, sel.select_outline, sel.send
        self.image_of = self.model.image_of

    # ---- layout -----------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        v, sel = self.map_view, self.selection_tools
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setMinimumWidth(170)   # "umap 20% · ~85 s left" whole
        self.progress.setTextVisible(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window
        self.codebook = CodebookMap(self.state, self.tasks, self.progress, self.status.setText, self)
        # Two toolbars that wrap (superqt's QFlowLayout) so the map fits a narrow window; a caption and its box wrap
        # together.
        top = flow_toolbar([(QLabel("split"), v.split_box), (QLabel("map"), v.method_box),
                            (QLabel("colour by"), v.colour_box, v.dim_box),
                            (QLabel("colour codes by"), self.codebook.colour_box),
                            (QLabel("decode as"), self.decoder.decode_as), (self.progress, self.cancel_btn)])
        second = flow_toolbar([*((v.setting_labels[name], box) for name, box in v.setting_boxes.items()),
                               (v.layer_label, v.layer_box), (v.shade_box,), (QLabel("drag"), v.tool_box),
                               (sel.search,), (QLabel("show"), sel.worst_n, sel.worst_btn),
                               (QLabel("prior"), self.prior_overlay.source_box, self.prior_overlay.summary)])
        self.codebook.colour_box.parentWidget().hide()     # shown with a VQ-VAE's codebook (_show_codebook)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.inspector.widget, "point")
        self.side_tabs.addTab(sel.grid, "selection")
        self.side_tabs.addTab(self.prior_overlay.widget, "prior holes")
        split = QSplitter()
        split.addWidget(v.scatter)
        split.addWidget(self.side_tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([700, 320])
        self.body = QStackedWidget()       # the map of the latents, or (a VQ-VAE) of the codebook
        self.body.addWidget(split)
        self.body.addWidget(self.codebook.page)
        lay = QVBoxLayout(self)
        lay.addWidget(top)
        lay.addWidget(second)
        lay.addWidget(self.body, 1)
        lay.addWidget(self.status)

    def _connect(self) -> None:
        v, sel = self.map_view, self.selection_tools
        v.reloadWanted.connect(self.reload)
        v.projectionWanted.connect(self._start_projection)
        v.layerChanged.connect(lambda: self._show_and_project() if self.model.latents is not None else None)
        v.scatter.outlined.connect(sel.select_outline)
        sel.grid.clickedRow.connect(self.inspector.show_point)
        sel.message.connect(self.status.setText)
        sel.counted.connect(self._show_count)
        self.inspector.pointShown.connect(lambda: self.side_tabs.setCurrentIndex(0))
        self.prior_overlay.shown.connect(lambda: self.side_tabs.setCurrentWidget(self.prior_overlay.widget))
        self.state.vaeChanged.connect(self._on_vae_changed)
        self.state.datasetChanged.connect(self.reload)

    def _show_count(self, n: int) -> None:
        if n:
            self.side_tabs.setCurrentWidget(self.selection_tools.grid)
        self.side_tabs.setTabText(1, f"selection ({n:,})" if n else "selection")

    # ---- loading ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        """(Re)encode the chosen split with the current VAE; called on vaeChanged / datasetChanged / split change."""
        self.newer_snapshot = None
        if self.defer_while_hidden():
            return
        self.tasks.cancel_all()
        m = self.model
        m.map_vae = None
        self._split = self.map_view.split_box.currentText()
        self.selection_tools.reset()
        m.clear()
        self.inspector.clear()
        self.decoder.fill_decode_as(self.state.vae)
        if self._show_codebook(CodebookMap.shows(self.state.vae)):
            self.codebook.load(self._split, self.map_view.method(), self.map_view.projection_settings())
            return
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
        m.map_vae = vae = found[0]
        m.map_dataset = self.state.dataset   # the dataset whose images the map's rows index
        self._fill_layers()
        m.split_images = [s.images.permute(0, 2, 3, 1).cpu().numpy() for _, s in splits]   # views, no copies
        total = sum(len(s) for _, s in splits)
        self.status.setText(f"encoding {total:,} {self._split} images…")
        self.tasks.start("encode", _encode_job, vae, splits, on_result=self._on_encoded,
                         progress=self.progress, progress_format="encode %p%{eta}", status=self.status.setText,
                         on_finished=self._task_done)

    def _show_codebook(self, vq: bool) -> bool:
        """A VQ-VAE's codebook map (vq) or the latents' map: the other's tools are hidden (their toolbar groups)."""
        v, sel = self.map_view, self.selection_tools
        latent_only = (v.colour_box, self.decoder.decode_as, v.shade_box, v.tool_box, sel.search, sel.worst_btn,
                       self.prior_overlay.source_box)
        for w in latent_only:
            w.parentWidget().setVisible(not vq)
        self.codebook.colour_box.parentWidget().setVisible(vq)
        self.body.setCurrentIndex(1 if vq else 0)
        v.show_settings()                  # the chosen method's (a restored choice arrives before any projection)
        if not vq and self.codebook.active:
            self.codebook.active = False
            self.codebook.clear()
        return vq

    def _fill_layers(self) -> None:
        self.model.layers = latent_layers(self.model.model)
        self.map_view.fill_layers()

    def _fill_decode_as(self) -> None:
        self.decoder.fill_decode_as(self.state.vae)

    def _on_encoded(self, data: MapData | None) -> None:
        if data is None:
            return
        self.model.set_encoded(data)
        self._show_and_project()

    def _show_and_project(self) -> None:
        """PCA (or the 2-D latent) at once; UMAP / t-SNE, when chosen, on the worker."""
        if self.map_view.method() != "pca" and not self.model.is_two_dimensional():
            self._show_initial_map()      # _start_projection shows PCA / the 2-D latent itself
        self._start_projection()

    def _show_initial_map(self) -> None:
        """PCA at once (or the latent itself when it is 2-D)."""
        m = self.model
        mu = m.projected_mu()
        if mu.shape[1] == 2:
            layer = f"{m.layer_name()} " if m.layer_name() else ""
            m.axis_labels = (f"{layer}z0", f"{layer}z1")
            self._set_xy(mu.astype(np.float32), "latent")
            return
        xy, explained = pca_2d_with_variance(mu)
        m.axis_labels = (f"PC1 ({explained[0]:.1%} of variance)", f"PC2 ({explained[1]:.1%} of variance)")
        self._set_xy(xy, "pca")

    def _start_projection(self) -> None:
        v, m = self.map_view, self.model
        v.show_settings()
        method = v.method()
        if self.codebook.active:
            self.codebook.project(method, v.projection_settings())
            return
        if m.latents is None:
            return
        self.tasks.cancel("projection")
        v.method_box.setEnabled(not m.is_two_dimensional())
        if method == "pca" or m.is_two_dimensional():
            self._show_initial_map()    # also says "PCA" wherever the old projection was named
            return
        cols = m.layer_columns()
        key = m.data.describe() if cols is None else f"{m.data.describe()}-layer{cols.start}-{cols.stop}"
        self.tasks.start("projection", _project_job, m.map_vae, m.projected_mu(), method, key, 0,
                         settings=v.projection_settings(),
                         on_result=lambda xy, meth=method: self._on_projected(xy, meth), progress=self.progress,
                         progress_format=f"{method} %p%{{eta}}", status=self.status.setText,
                         on_finished=self._projection_done)
        self._label_projection()     # what is shown stays, named as what it is, until the new one is ready

    def _on_projected(self, xy: np.ndarray | None, method: str) -> None:
        if xy is None or self.model.latents is None:
            return
        self._set_xy(xy, method)

    def _set_xy(self, xy: np.ndarray, method: str) -> None:
        self.model.set_positions(xy, method)   # the views draw it (positionsChanged)
        self._label_projection()

    def projection_name(self) -> str:
        return self.map_view.projection_name()

    def _label_projection(self) -> None:
        """Name the projection shown in the map's title, the status and the progress bar."""
        shown, m = self.map_view.projection_name(), self.model
        if not shown:
            return
        n = len(m.xy)
        what = m.data.describe() if m.data is not None else self._split
        if m.layer_name():
            what += f", layer {m.layer_name()}"
        self.scatter.set_title(f"{shown} of {n} {what} latents")
        wanted = self.method_box.currentText()
        if self.tasks.running("projection") and wanted != shown:
            text = f"{shown} shown; computing {wanted} in the background…"
        else:
            text = f"{shown} map of {n} {what} latents; {m.stats}"
        newer = self.newer_snapshot
        if newer is not None and m.map_vae is not None:
            self.scatter.set_title(f"{shown} of {n} {what} latents (epoch {m.map_vae.epoch})")
            text += (f" — epoch {m.map_vae.epoch}; a newer snapshot (epoch {newer.epoch}) arrived: refreshing "
                     "when this map is done")
        self.status.setText(text)
        if not self.tasks.busy():
            self.progress.setFormat(f"{shown} shown")

    def _on_vae_changed(self) -> None:
        """Another model reloads the map. A newer snapshot of the same run (training, with the map following it)
        while UMAP / t-SNE computes does not throw that work away: the map is finished and marked, then reloaded
        once for the newest snapshot (later snapshots meanwhile join that one reload)."""
        newer = self.state.vae
        if (self.state.snapshot_update and newer is not None and self.model.map_vae is not None
                and self.tasks.running("projection")):
            self.newer_snapshot = newer
            self._label_projection()
            return
        self.reload()

    def _projection_done(self, stopped: bool) -> None:
        self._task_done(stopped)
        if self.newer_snapshot is not None:
            self.reload()        # once, for the newest snapshot

    def _task_done(self, _stopped: bool) -> None:
        if not self.tasks.running("encode") and not self.tasks.running("projection"):
            shown = self.map_view.projection_name()
            self.progress.setFormat(f"{shown} shown" if shown else "idle")

    def cancel(self) -> None:
        """Stop the running encode / projection / prior fit (the map keeps what it shows, e.g. PCA)."""
        self.tasks.cancel_all()
        shown = self.map_view.projection_name()
        self.status.setText("cancelled; " + (f"showing {shown}" if shown else "nothing encoded"))

    def shutdown(self) -> None:
        self.decoder.sweep.cancel()
        self.tasks.shutdown()
