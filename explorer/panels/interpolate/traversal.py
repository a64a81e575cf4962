"""Traversal: one slider per latent dimension, ordered by KL (active dimensions first), each offsetting the whole path
by -3..3 along its dimension. With a hierarchical VAE's layer picked, only that layer's dimensions have sliders."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QScrollArea, QSlider, QVBoxLayout, QWidget
from superqt.utils import signals_blocked

from core.latent.interpolation import traversal_order

TRAVERSE_RANGE = 3.0


class TraversalView(QWidget):
    offsetsChanged = Signal()      # a slider moved (a drag: many times)
    offsetsReset = Signal()        # every offset back to 0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.offsets: np.ndarray = np.zeros(0, np.float32)
        self._sliders: list[tuple[int, QSlider, QLabel]] = []
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.reset_btn = QPushButton("Reset dimensions")
        self.reset_btn.clicked.connect(self.reset)
        lay = QVBoxLayout(self)
        title = QLabel("traversal (dimensions by KL, active first)")
        title.setWordWrap(True)        # two lines in a narrow window rather than a wider panel
        lay.addWidget(title)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.reset_btn)

    def build(self, kl_per_dim: np.ndarray, dims: slice | None, names: list[str]) -> None:
        """Sliders for dimensions `dims` (None: all) by KL; every offset back to 0."""
        # The rows go into a new box, set in place of the old one (which goes, rows and all) once filled: rows added
        # to a box on screen stay hidden until the next event-loop pass and count for nothing in its minimum width,
        # so the list claimed 34 px for rows of 202 and their right ends lay under the scroll bar.
        box = QWidget()
        grid = QGridLayout(box)
        grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._sliders = []
        self.offsets = np.zeros(len(kl_per_dim), np.float32)
        dims = dims or slice(0, len(kl_per_dim))
        for row, d in enumerate(dims.start + traversal_order(kl_per_dim[dims])):
            label = QLabel(f"{names[d]}  KL {kl_per_dim[d]:.2f}")
            label.setEnabled(bool(kl_per_dim[d] > 0.01))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-300, 300)                  # hundredths of -3..3
            slider.setMinimumWidth(60)                  # a slider to drag, however narrow the window
            value = QLabel("+0.00")
            value.setMinimumWidth(value.fontMetrics().horizontalAdvance("-0.00") + 6)
            slider.valueChanged.connect(lambda v, d=int(d), lab=value: self._on_slider(d, v, lab))
            grid.addWidget(label, row, 0)
            grid.addWidget(slider, row, 1)
            grid.addWidget(value, row, 2)
            self._sliders.append((int(d), slider, value))
        # the list scrolls up and down, never sideways: it is as wide as a row of label, slider and value
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(box.minimumSizeHint().width() + bar + 2 * self.scroll.frameWidth())
        self.scroll.setWidget(box)

    def dim_slider(self, dim: int) -> QSlider:
        return next(s for d, s, _ in self._sliders if d == dim)

    def slider_dims(self) -> list[int]:
        """The latent dimensions in the order their sliders are shown."""
        return [d for d, _, _ in self._sliders]

    def _on_slider(self, d: int, v: int, label: QLabel) -> None:
        self.offsets[d] = v / 100 * (TRAVERSE_RANGE / 3.0)
        label.setText(f"{self.offsets[d]:+.2f}")
        self.offsetsChanged.emit()

    def reset(self) -> None:
        for _, slider, label in self._sliders:
            with signals_blocked(slider):
                slider.setValue(0)
            label.setText("+0.00")
        self.offsets[:] = 0
        self.offsetsReset.emit()
