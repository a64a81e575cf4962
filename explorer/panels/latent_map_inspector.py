"""The latent map's inspector: the side view of one point or one decoded position: the image, its reconstruction
(or the decode), the latent vector as bars, what it is, its nearest neighbours in latent space (click one to
inspect it), and "Send to interpolation" (a hand-off through the app's state).

`show_point(row)` inspects a data point, `show_decoded(...)` a position the decoder decoded, `clear()` empties it;
the clicked row and the decoded position live in the map model, which the map view marks.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.latent.encoding import nearest_neighbours
from explorer.handoffs import Endpoint, InterpolationEndpoints
from explorer.panels.latent_map_model import MapModel
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_widgets import PixelView, inspector_bars

HINT = "Click a point, or empty space to decode the latent there."
NEIGHBOURS = "nearest neighbours in latent space"


class MapInspector(QObject):
    pointShown = Signal()     # a data point is inspected (the panel brings the side view to the front)

    def __init__(self, model: MapModel, state: AppState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.state = model, state
        self.neighbour_ids = np.zeros(0, dtype=np.int64)
        self.current_z: tuple[np.ndarray, int] | None = None   # the latent shown, and the class it decodes as
        self.image_view = PixelView(minimum=96)
        self.recon_view = PixelView(minimum=96)
        self.info = QLabel(HINT)
        self.info.setWordWrap(True)
        self.bars, self.bar_item = inspector_bars("latent dimension")
        self.neighbours = ImageGrid()
        self.neighbours.setMinimumHeight(80)
        self.neighbours.clicked.connect(self._on_neighbour_clicked)
        self.neighbours_title = QLabel(NEIGHBOURS)
        self.neighbours_title.setWordWrap(True)
        self.send_btn = QPushButton("Send to interpolation")
        self.send_btn.setEnabled(False)
        self.send_btn.clicked.connect(self.send)
        self.widget = self._layout()
        model.queryDropped.connect(self.clear)

    def _layout(self) -> QWidget:
        pair = QHBoxLayout()
        pair.addWidget(self.image_view)
        pair.addWidget(self.recon_view)
        side = QVBoxLayout()
        side.addLayout(pair)
        for w in (self.info, self.bars, self.neighbours_title):
            side.addWidget(w)
        side.addWidget(self.neighbours, 1)
        side.addWidget(self.send_btn)
        widget = QWidget()
        widget.setLayout(side)
        return widget

    # ---- what it shows ----------------------------------------------------------------------------------------------
    def show_point(self, i: int) -> None:
        """Inspect data row `i` (and tell the app which image is selected)."""
        m = self.model
        lat = m.latents
        if lat is None or m.xy is None:
            return
        m.select(i)
        names = m.class_names
        label = int(lat.labels[i])
        split, index = m.data.origin(i)
        self.image_view.set_image(m.image_of(i), f"{split} #{index}: {names[label]}")
        self.recon_view.set_image(m.reconstruct(i), f"recon (err {lat.recon_error[i]:.3f})")
        self.show_latent(lat.mu[i])
        self.info.setText(f"image {index} of {split}, class {names[label]}; KL {lat.kl[i]:.2f} nats")
        self.show_neighbours(nearest_neighbours(lat.mu, i, 8), f"nearest neighbours of {split} #{index} in "
                                                               "latent space")
        self.current_z = (lat.mu[i].copy(), label)
        self.send_btn.setEnabled(True)
        self.pointShown.emit()
        self.state.imageSelected.emit(split, index)

    def show_decoded(self, z: np.ndarray, label: int, image: np.ndarray, caption: str, info: str) -> None:
        """Inspect a decoded latent `z` (its decode `image`), with the data nearest to it in latent space (never the
        previously clicked point's neighbours)."""
        self.image_view.set_image(None, "")
        self.recon_view.set_image(image, caption)
        self.show_latent(z)
        self.info.setText(info)
        d = np.linalg.norm(self.model.latents.mu - z[None], axis=1)
        k = min(8, len(d))
        near = np.argpartition(d, k - 1)[:k]
        self.show_neighbours(near[np.argsort(d[near], kind="stable")].astype(np.int64),
                             "data nearest to the decoded position in latent space")
        self.current_z = (z.copy(), label)
        self.send_btn.setEnabled(True)

    def show_latent(self, z: np.ndarray) -> None:
        self.bar_item.setOpts(x=np.arange(len(z)), height=np.asarray(z, dtype=float), width=0.8)
        self.bars.enableAutoRange()

    def show_neighbours(self, ids: np.ndarray, title: str) -> None:
        lat, names = self.model.latents, self.model.class_names
        self.neighbour_ids = ids
        self.neighbours.set_images(self.model.image_of(ids), columns=4,
                                   captions=[names[int(lat.labels[j])] for j in ids])
        self.neighbours_title.setText(title)

    def clear(self) -> None:
        """Nothing selected: no image, latent or neighbours left over from an earlier selection."""
        self.neighbour_ids = np.zeros(0, dtype=np.int64)
        self.neighbours.clear()
        self.neighbours_title.setText(NEIGHBOURS)
        self.image_view.set_image(None, "")
        self.recon_view.set_image(None, "")
        self.bar_item.setOpts(x=[], height=[], width=0.8)
        self.info.setText(HINT)
        self.current_z = None
        self.send_btn.setEnabled(False)

    def _on_neighbour_clicked(self, k: int) -> None:
        if 0 <= k < len(self.neighbour_ids):
            self.show_point(int(self.neighbour_ids[k]))

    def send(self) -> None:
        """The latent shown to Interpolation (a hand-off through the state): a clicked image also says which image it
        is, so an Interpolation showing another model encodes that image with its own model."""
        if self.current_z is None:
            return
        z, label = self.current_z
        m = self.model
        where = {}
        if m.selected is not None and m.data is not None:
            split, index = m.data.origin(m.selected)
            where = {"split": split, "index": int(index), "dataset": m.map_dataset}
        end = Endpoint(z.copy(), int(label), m.model, **where)
        self.state.hand_off(InterpolationEndpoints((end,), "the latent map's " + ("image" if where else "position")))
