"""The latent map's position decoder: a click in empty space, or a left-drag sweep, decodes the latent under the
cursor (core.latent.positions.PositionMapper) with its distance to the data; a click on a point inspects that point.

Sweeps are rate-limited (superqt's throttle: at most every 16 ms, always ending on the latest position). The
"decode as" box picks the class a conditional VAE decodes a position as (the nearest class by default).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF
from PySide6.QtWidgets import QComboBox
from superqt.utils import qthrottled, signals_blocked

from core.latent.encoding import decode_latents
from explorer.panels.latent_map_inspector import MapInspector
from explorer.panels.latent_map_model import MapModel
from explorer.panels.latent_map_view import FAR_FROM_DATA
from explorer.widgets.latent_scatter import LatentScatter


class PositionDecoder(QObject):
    def __init__(self, model: MapModel, scatter: LatentScatter, inspector: MapInspector,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.scatter, self.inspector = model, scatter, inspector
        self.decode_as = QComboBox()
        self.decode_as.setToolTip("class used to decode positions in empty space (the conditional VAE needs one)")
        self.decode_as.currentIndexChanged.connect(lambda _: self.redecode())
        # Drags decode at most every 16 ms, always ending on the latest position (superqt's throttle).
        self.sweep = qthrottled(self.decode_at, 16, parent=self)
        scatter.sweptTo.connect(self.on_sweep)
        scatter.clickedAt.connect(self.click_view)

    def fill_decode_as(self, vae) -> None:
        """"nearest class" and the model's classes (a conditional VAE), or "(unconditional)"."""
        with signals_blocked(self.decode_as):
            self.decode_as.clear()
            if vae is not None and vae.model.num_classes:
                self.decode_as.addItem("nearest class")
                self.decode_as.addItems(list(vae.meta.class_names))
                self.decode_as.setEnabled(True)
            else:
                self.decode_as.addItem("(unconditional)")
                self.decode_as.setEnabled(False)

    def click_view(self, pos: QPointF) -> None:
        """A click at a view position: inspect the point there, or decode the empty space."""
        i = self.scatter.point_near(pos)
        if i is not None:
            self.inspector.show_point(i)
        else:
            self.sweep.cancel()
            self.decode_at(pos)

    def on_sweep(self, pos: QPointF, finished: bool) -> None:
        self.sweep(pos)
        if finished:
            self.sweep.flush()

    def _label(self, p: np.ndarray) -> int:
        mapper = self.model.mapper
        if self.decode_as.currentIndex() <= 0:
            return int(mapper.label_at(p)[0]) if mapper.labels is not None else 0
        return self.decode_as.currentIndex() - 1

    def decode_at(self, pos: QPointF) -> None:
        m = self.model
        if m.mapper is None or m.model is None:
            return
        p = np.array([[pos.x(), pos.y()]], dtype=np.float64)
        z = m.mapper.latent_at(p)[0]
        dist = float(m.mapper.distance_to_data(p)[0])
        conditional = m.model.num_classes > 0
        label = self._label(p) if conditional else 0
        img = decode_latents(m.model, z[None], label if conditional else None)[0]
        m.set_query(p[0])
        far = " — FAR FROM DATA: this decode extrapolates" if dist > FAR_FROM_DATA else ""
        info = f"position ({p[0, 0]:.2f}, {p[0, 1]:.2f}); distance to data {dist:.1f}x the typical spacing{far}"
        caption = f"decoded as {m.class_names[label]}" if conditional else "decoded"
        self.inspector.show_decoded(z, label, img, caption, info)

    def redecode(self) -> None:
        q = self.model.query
        if q is not None:
            self.decode_at(QPointF(float(q[0]), float(q[1])))
