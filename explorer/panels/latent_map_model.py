"""The latent map's model: what its views share (the encoded latents, their 2-D positions, the mapper between the two,
the hovered / clicked point and the decoded position), and the signals by which the views follow it.

The panel (explorer/panels/latent_map.py) fills it: `set_encoded` when an encoding arrives, `set_positions` when a
projection is shown, `clear` when the map reloads. The map view draws `positionsChanged` and `markersChanged`; the
inspector and the position decoder write `selected` / `query` through `select` / `set_query`; the selection tools
and the prior overlay read the latents and positions. No view calls another view to learn these values.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.latent.encoding import Latents, decode_latents
from core.latent.map_data import MapData
from core.latent.positions import PositionMapper
from core.training.checkpoint import LoadedModel

TRANSFORM_NEIGHBOURS = 8   # a UMAP / t-SNE map places a latent by its nearest data latents (as the mapper does back)


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


class MapTransform:
    """Latent -> map position: the forward direction of the shown projection, for latents that are not the data's
    (a sampler's z for the prior overlay).

    PCA and a 2-D latent are linear maps of the data latents; the map was computed from them, so the affine map that
    reproduces the data's positions (least squares, exact for these) is the projection itself. UMAP and t-SNE have no
    such map: a latent is placed at the inverse-distance-weighted mean of its nearest data latents' positions (the
    `PositionMapper`'s blend, run the other way). That places every latent on or between data points, so those maps
    cannot show how far off the data a latent lies; `linear` says which kind this is."""

    def __init__(self, mu: np.ndarray, xy: np.ndarray, method: str, columns: slice | None = None) -> None:
        self.columns = columns
        self.linear = method in ("pca", "latent")
        self.xy = np.asarray(xy, dtype=np.float64)
        data = self._columns(mu)
        if self.linear:
            self.mean = data.mean(axis=0)
            self.weights = np.linalg.lstsq(data - self.mean, self.xy - self.xy.mean(axis=0), rcond=None)[0]
            self.offset = self.xy.mean(axis=0)
        else:
            from scipy.spatial import cKDTree

            self.tree = cKDTree(data)

    def _columns(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        return z if self.columns is None else z[:, self.columns]

    def to_map(self, z: np.ndarray) -> np.ndarray:
        """(M, D) latents (the whole flat latent; a layer's map reads its columns) -> (M, 2) float32 positions."""
        z = self._columns(z)
        if self.linear:
            return ((z - self.mean) @ self.weights + self.offset).astype(np.float32)
        k = min(TRANSFORM_NEIGHBOURS, len(self.xy))
        d, i = self.tree.query(z, k=k)
        d, i = d.reshape(len(z), k), i.reshape(len(z), k)
        w = 1.0 / np.maximum(d, 1e-12) ** 2
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("mk,mkd->md", w, self.xy[i]).astype(np.float32)


class MapModel(QObject):
    """The map's shared state (see the module docstring). Plain attributes are read freely; the setters below
    announce changes."""

    positionsChanged = Signal()   # xy / mapper / transform replaced (a projection shown) or gone (xy None)
    markersChanged = Signal()     # the clicked point or the decoded position changed
    queryDropped = Signal()       # new positions: the decoded position (of the old layout) is gone
    encoded = Signal()            # new latents (an encoding arrived)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.map_vae: LoadedModel | None = None   # the model the map was encoded with (decodes use it too)
        self.map_dataset = None                   # the Dataset whose images the map's rows index
        self.layers: tuple[tuple[str, slice], ...] = ()
        self.layer = 0                            # the index of the layer the map projects
        self.split_images: list[np.ndarray] = []
        self.stats = ""                           # the encoding's mean KL and reconstruction error, for the status
        self.clear()

    def clear(self) -> None:
        """Nothing encoded (a reload): no latents, positions, point or decoded position."""
        self.data: MapData | None = None
        self.latents: Latents | None = None
        self.images: MapImages | None = None
        self.xy: np.ndarray | None = None
        self.projection_shown = ""                # "pca" / "umap" / "tsne" / "latent": what the positions are
        self.axis_labels: tuple[str, str] | None = None
        self.mapper: PositionMapper | None = None
        self.transform: MapTransform | None = None
        self.selected: int | None = None          # the clicked data row
        self.query: np.ndarray | None = None      # the decoded empty-space position
        self.hover_index: int | None = None
        self.positionsChanged.emit()

    # ---- filling ----------------------------------------------------------------------------------------------------
    def set_encoded(self, data: MapData) -> None:
        self.data = data
        self.latents = lat = data.latents
        self.images = MapImages(self.split_images, data.split_of, data.index_in_split)
        self.stats = f"mean KL {lat.kl.mean():.2f} nats, mean reconstruction error {lat.recon_error.mean():.4f}"
        self.encoded.emit()

    def set_positions(self, xy: np.ndarray, method: str) -> None:
        """Show the latents at `xy` (N, 2), computed by `method`; a decoded position of the old layout is dropped."""
        lat = self.latents
        assert lat is not None
        self.xy = np.asarray(xy, dtype=np.float32)
        self.projection_shown = method
        cols = self.layer_columns()
        self.mapper = PositionMapper(self.xy, lat.mu, lat.labels, columns=cols)
        self.transform = MapTransform(lat.mu, self.xy, method, cols)
        dropped, self.query = self.query is not None, None    # it belonged to the old layout's coordinates
        self.positionsChanged.emit()
        if dropped:
            self.queryDropped.emit()

    def select(self, row: int | None) -> None:
        self.selected = None if row is None else int(row)
        if row is not None:
            self.query = None
        self.markersChanged.emit()

    def set_query(self, p: np.ndarray | None) -> None:
        self.query = None if p is None else np.asarray(p, dtype=np.float64)
        if p is not None:
            self.selected = None
        self.markersChanged.emit()

    # ---- reading ----------------------------------------------------------------------------------------------------
    @property
    def model(self):
        return None if self.map_vae is None else self.map_vae.model

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.map_vae.meta.class_names) if self.map_vae is not None else ()

    def layer_columns(self) -> slice | None:
        """The columns of the flat latent the map projects (None: all of them)."""
        if self.map_vae is None or len(self.layers) <= 1:
            return None
        return self.layers[max(0, self.layer)][1]

    def layer_name(self) -> str:
        return self.layers[max(0, self.layer)][0] if self.layer_columns() is not None else ""

    def projected_mu(self) -> np.ndarray:
        cols = self.layer_columns()
        return self.latents.mu if cols is None else np.ascontiguousarray(self.latents.mu[:, cols])

    def is_two_dimensional(self) -> bool:
        """The projected latent (or layer) has two dimensions: it is shown as it is."""
        return self.latents is not None and self.projected_mu().shape[1] == 2

    def image_of(self, rows: np.ndarray | int) -> np.ndarray:
        """The dataset images of map rows `rows` (uint8 HWC), read from their splits."""
        return self.images[rows]

    def reconstruct(self, i: int) -> np.ndarray:
        lat = self.latents
        return decode_latents(self.model, lat.mu[i:i + 1], int(lat.labels[i]))[0]
