"""The interpolation's endpoints (A and B): the mode (two images, or one z walked between two classes), two dataset
images by index, their classes, their thumbnails, the path (linear or spherical) and, for a hierarchical VAE, the
latent layer the path moves.

The view holds the endpoints themselves (`z`, `y`, and whether each came from elsewhere: `external`) and says when
they change (`changed`). An index box asks the panel to load that image's latent (`indexChanged(k)`); a latent sent
from another panel fills A, then B, then A again (`receive`)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from explorer.widgets.latent_widgets import PixelView

MODES = ("two images", "class morph (same z)")


class EndpointsView(QWidget):
    changed = Signal()             # an endpoint, its class, the mode or the path changed: redraw the path
    indexChanged = Signal(int)     # endpoint k's index box changed: load that image's latent
    layerChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.z = [np.zeros(1, np.float32), np.zeros(1, np.float32)]
        self.y = [0, 0]
        self.external = [False, False]   # a latent sent from another panel overrides the index box
        self._next_external = 0
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.index = [QSpinBox(), QSpinBox()]
        self.cls = [QComboBox(), QComboBox()]
        self.thumbs = [PixelView(minimum=64), PixelView(minimum=64)]
        for k in range(2):
            self.index[k].setPrefix("A: image " if k == 0 else "B: image ")
            self.index[k].valueChanged.connect(lambda _v, k=k: self._index_changed(k))
            self.cls[k].currentIndexChanged.connect(lambda _v, k=k: self._class_changed(k))
            self.thumbs[k].setMaximumHeight(140)
        self.layer = QComboBox()
        self.layer.setToolTip("A hierarchical VAE's latent layer that the path and the traversal sliders move (the "
                              "others stay at A's code)")
        self.linear, self.spherical = QRadioButton("linear"), QRadioButton("spherical")
        self.linear.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.linear)
        group.addButton(self.spherical)
        self.mode.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.linear.toggled.connect(lambda _: self.changed.emit())
        self.layer.currentIndexChanged.connect(lambda _: self.layerChanged.emit())
        self._lay_out()

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("endpoints", self.mode)
        ends = QGridLayout()
        for k in range(2):
            ends.addWidget(self.index[k], 0, k)
            ends.addWidget(self.cls[k], 1, k)
            ends.addWidget(self.thumbs[k], 2, k)
        form.addRow(ends)
        path = QHBoxLayout()
        path.addWidget(self.linear)
        path.addWidget(self.spherical)
        form.addRow("path", path)
        form.addRow("layer", self.layer)
        form.setRowVisible(self.layer, False)
        self._form = form
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)

    def morph(self) -> bool:
        return self.mode.currentIndex() == 1

    # ---- filling the boxes for a model --------------------------------------------------------------------------
    def fill_classes(self, names: list[str]) -> None:
        for k, box in enumerate(self.cls):
            with signals_blocked(box):
                box.clear()
                box.addItems(names)
                if names:
                    box.setCurrentIndex(min(k * (len(names) - 1), len(names) - 1))
                box.setEnabled(bool(names))

    def fill_layers(self, layers: tuple[tuple[str, int], ...]) -> None:
        """The layer picker lists the model's latent layers; shown only when there is more than one."""
        with signals_blocked(self.layer):
            self.layer.clear()
            self.layer.addItem("all layers")
            for name, size in layers:
                self.layer.addItem(f"{name} ({size} dims)")
            self.layer.setCurrentIndex(0)
        self._form.setRowVisible(self.layer, len(layers) > 1)

    def set_count(self, n: int) -> None:
        """n images to pick from: A stays where it was, B is the second image."""
        for box in self.index:
            with signals_blocked(box):
                box.setRange(0, n - 1)
        with signals_blocked(self.index[1]):
            self.index[1].setValue(min(1, n - 1))

    # ---- the endpoints ------------------------------------------------------------------------------------------
    def set_endpoint(self, k: int, z: np.ndarray, label: int) -> None:
        """Endpoint k is latent `z` of class `label` (sent from elsewhere: it overrides the index box)."""
        self.z[k] = np.asarray(z, dtype=np.float32).copy()
        self.y[k] = int(label)
        self.external[k] = True
        self.show_class(k)
        self.changed.emit()

    def receive(self, z: np.ndarray, label: int) -> None:
        """Take a latent from another panel (sampler sample, map position); fills A, then B, then A again…"""
        self.set_endpoint(self.next_slot(), z, label)

    def next_slot(self) -> int:
        k = self._next_external
        self._next_external = 1 - k
        return k

    def pick_image(self, index: int) -> None:
        """A dataset image picked elsewhere becomes B, the old B becomes A (so two clicks set both)."""
        with signals_blocked(self.index[0]), signals_blocked(self.index[1]):
            self.index[0].setValue(self.index[1].value())
            self.index[1].setValue(index)
        self.external[:] = [False, False]

    def show_class(self, k: int) -> None:
        """The class box of endpoint k shows its class (without feeding back)."""
        if 0 <= self.y[k] < self.cls[k].count():
            with signals_blocked(self.cls[k]):
                self.cls[k].setCurrentIndex(self.y[k])

    def _index_changed(self, k: int) -> None:
        self.external[k] = False
        self.indexChanged.emit(k)

    def _class_changed(self, k: int) -> None:
        if self.cls[k].currentIndex() >= 0:
            self.y[k] = self.cls[k].currentIndex()
        self.changed.emit()
