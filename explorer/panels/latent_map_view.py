"""The latent map's map view: which projection (split, method and its settings, the latent layer), the scatter that
draws the model's positions, how points are coloured (class, reconstruction error, KL, a latent dimension), the shade
over the space far from the data, the drag tool and the hover thumbnail.

It draws what the map model holds (`positionsChanged`, `markersChanged`) and asks for work by signals: a split
chosen (`reloadWanted`), a method or a setting of the chosen method changed (`projectionWanted`), another layer
(`layerChanged`). The panel runs that work and places the controls in its rows.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QSpinBox
from superqt.utils import signals_blocked

from core.latent.projection import ProjectionSettings
from explorer.panels.latent_map_model import MapModel
from explorer.widgets.image_grid import array_to_qimage
from explorer.widgets.latent_scatter import TOOLS, LatentScatter
from explorer.widgets.panel_controls import combo_box

SPLITS = ("test", "val", "train", "all")
PROJECTIONS = {"UMAP": "umap", "PCA": "pca", "t-SNE": "tsne"}
COLOUR_BY = ("class", "reconstruction error", "KL", "latent dimension")
FAR_FROM_DATA = 3.0   # distance (in typical neighbour spacings) beyond which a decode is called an extrapolation
SETTING_OF = {"neighbours": "umap", "min dist": "umap", "perplexity": "tsne"}


class MapView(QObject):
    reloadWanted = Signal()       # another split: encode again
    projectionWanted = Signal()   # another method, or a setting of the shown method
    layerChanged = Signal()       # another latent layer (a hierarchical VAE)

    def __init__(self, model: MapModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.scatter = LatentScatter()
        self.scatter.hovered.connect(self._on_hover)
        self.split_box = combo_box(SPLITS, lambda _: self.reloadWanted.emit())
        self.method_box = combo_box(PROJECTIONS, lambda _: self.projectionWanted.emit())
        self._build_settings()
        self._build_colours()
        model.positionsChanged.connect(self.draw)
        model.markersChanged.connect(self.draw_markers)
        model.encoded.connect(lambda: self.dim_box.setRange(0, model.latents.mu.shape[1] - 1))

    def _build_settings(self) -> None:
        """UMAP / t-SNE settings (only the chosen method's are shown) and the latent layer."""
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
        self.setting_boxes = {"neighbours": self.neighbours_box, "min dist": self.min_dist_box,
                              "perplexity": self.perplexity_box}
        self.setting_labels = {name: QLabel(name) for name in self.setting_boxes}
        for name, box in self.setting_boxes.items():
            box.setKeyboardTracking(False)       # typing "30" projects once, not for "3" and then "30"
            box.valueChanged.connect(lambda _v, m=SETTING_OF[name]: self._setting_changed(m))
        self.layer_box = QComboBox()
        self.layer_box.setToolTip("the latent layer the map projects (a hierarchical VAE has several)")
        self.layer_box.currentIndexChanged.connect(self._on_layer)
        self.layer_label = QLabel("layer")
        self.layer_label.hide()
        self.layer_box.hide()
        self.show_settings()

    def _build_colours(self) -> None:
        """Colouring, the shade far from data and the drag tool."""
        self.colour_box = combo_box(COLOUR_BY, lambda _: self.apply_colours())
        self.dim_box = QSpinBox()
        self.dim_box.setPrefix("dim ")
        self.dim_box.valueChanged.connect(lambda _: self.apply_colours())
        self.shade_box = QCheckBox("shade far from data")
        self.shade_box.setChecked(True)
        self.shade_box.toggled.connect(lambda on: self.scatter.set_shade_visible(on))
        self.tool_box = combo_box(TOOLS, self.scatter.set_tool,
                                  tooltip="what a left-drag does: decode under the cursor, or select with a lasso "
                                          "or a rectangle (Shift+drag is always the lasso)")

    # ---- projection settings ----------------------------------------------------------------------------------------
    def method(self) -> str:
        """The chosen method: "umap", "pca" or "tsne"."""
        return PROJECTIONS[self.method_box.currentText()]

    def projection_settings(self) -> ProjectionSettings:
        return ProjectionSettings(n_neighbors=self.neighbours_box.value(), min_dist=round(self.min_dist_box.value(), 3),
                                  perplexity=self.perplexity_box.value())

    def show_settings(self) -> None:
        """Only the chosen method's settings are shown."""
        method = self.method()
        for name, box in self.setting_boxes.items():
            box.setVisible(method == SETTING_OF[name])
            self.setting_labels[name].setVisible(method == SETTING_OF[name])

    def _setting_changed(self, method: str) -> None:
        if self.method() == method:
            self.projectionWanted.emit()

    def fill_layers(self) -> None:
        """The layer box lists a hierarchical VAE's latent layers (hidden for a one-layer VAE)."""
        layers = self.model.layers
        with signals_blocked(self.layer_box):
            self.layer_box.clear()
            for name, cols in layers:
                self.layer_box.addItem(f"{name} ({cols.stop - cols.start}-D)")
        self.model.layer = max(0, self.layer_box.currentIndex())
        self.layer_box.setVisible(len(layers) > 1)
        self.layer_label.setVisible(len(layers) > 1)

    def _on_layer(self, index: int) -> None:
        self.model.layer = max(0, index)
        self.layerChanged.emit()

    def projection_name(self) -> str:
        """The shown projection as the "map" box names it ("" when nothing is shown)."""
        names = {**{v: k for k, v in PROJECTIONS.items()}, "latent": "2-D latent"}
        return names.get(self.model.projection_shown, "") if self.model.xy is not None else ""

    # ---- drawing ----------------------------------------------------------------------------------------------------
    def draw(self) -> None:
        """The model's positions: points, axes, colours, shade and markers (or an empty map)."""
        m = self.model
        if m.xy is None:
            self.scatter.clear_points()
            self.scatter.set_title("")
            self.scatter.set_axes(None)
            return
        self.scatter.set_points(m.xy, m.latents.labels, m.class_names, m.mapper.tree)
        linear = m.projection_shown in ("pca", "latent") and m.axis_labels
        self.scatter.set_axes(*(m.axis_labels if linear else (None,)))
        self.apply_colours()
        self.update_shading()
        self.draw_markers()

    def draw_markers(self) -> None:
        self.scatter.mark_point(self.model.selected)
        self.scatter.mark_query(self.model.query)

    def colour_values(self) -> np.ndarray | None:
        """The per-point values the map is coloured by (None = by class)."""
        lat = self.model.latents
        mode = self.colour_box.currentText()
        self.dim_box.setVisible(mode == "latent dimension")
        if lat is None or mode == "class":
            return None
        if mode == "reconstruction error":
            return lat.recon_error
        if mode == "KL":
            return lat.kl
        return lat.mu[:, min(self.dim_box.value(), lat.mu.shape[1] - 1)]

    def apply_colours(self) -> None:
        self.scatter.set_colour_values(self.colour_values())

    def update_shading(self) -> None:
        m = self.model
        if m.mapper is None or m.xy is None:
            return
        lo, hi = m.xy.min(0), m.xy.max(0)
        pad = (hi - lo) * 1.0 + 1e-6          # wide margin: zooming out still shows shade, not a hard edge
        lo, hi = lo - pad, hi + pad
        d = m.mapper.distance_image((lo[0], hi[0]), (lo[1], hi[1]), size=256)
        alpha = np.clip((d - 1.0) / (FAR_FROM_DATA * 2), 0, 1) * 70
        rgba = np.zeros(d.shape + (4,), np.uint8)
        rgba[..., :3] = 90
        rgba[..., 3] = alpha.astype(np.uint8)
        self.scatter.set_shade(rgba, (lo[0], hi[0]), (lo[1], hi[1]), self.shade_box.isChecked())

    def _on_hover(self, pos: QPointF | None) -> None:
        """The image and its reconstruction float next to the point under the cursor."""
        i = None if pos is None else self.scatter.point_near(pos)
        self.model.hover_index = i
        if i is None:
            self.scatter.hide_hover()
            return
        pair = np.concatenate([self.model.image_of(i), self.model.reconstruct(i)], axis=1)
        self.scatter.show_hover(array_to_qimage(pair), pos)
