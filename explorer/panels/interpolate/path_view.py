"""The walk itself: the t slider and the live image at t, the strip of N steps (click a step to go there) and its
exports (PNG strip, animated GIF). It shows what the panel decodes; it decodes nothing itself."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget

from explorer.widgets.flow_toolbar import flow_toolbar
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_widgets import PixelView

SLIDER_STEPS = 1000


class PathView(QWidget):
    exportChosen = Signal(str, str)     # (kind "png" or "gif", path) chosen in the save dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.t_slider = QSlider(Qt.Orientation.Horizontal)
        self.t_slider.setRange(0, SLIDER_STEPS)
        self.t_label = QLabel("t = 0.00")
        self.view = PixelView(minimum=160)
        self.steps = QSpinBox()
        self.steps.setRange(2, 64)
        self.steps.setValue(10)
        self.steps.setPrefix("steps ")
        self.strip_grid = ImageGrid()
        self.strip_grid.setMinimumHeight(60)
        self.strip_grid.clicked.connect(lambda i: self.t_slider.setValue(
            round(i / max(1, self.steps.value() - 1) * SLIDER_STEPS)))
        self.png_btn = QPushButton("Strip PNG…")
        self.png_btn.setToolTip("Export the strip of steps as one PNG")
        self.png_btn.clicked.connect(lambda: self._export_dialog("png"))
        self.gif_btn = QPushButton("GIF…")
        self.gif_btn.setToolTip("Export the walk as an animated GIF")
        self.gif_btn.clicked.connect(lambda: self._export_dialog("gif"))
        row = QHBoxLayout()
        row.addWidget(self.t_label)
        row.addWidget(self.t_slider, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.view, 3)
        lay.addWidget(flow_toolbar([[self.steps], [self.png_btn, self.gif_btn]]))   # wraps in a narrow window
        lay.addWidget(self.strip_grid, 1)

    def t(self) -> float:
        return self.t_slider.value() / SLIDER_STEPS

    def step_times(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.steps.value())

    def show_current(self, image: np.ndarray, t: float) -> None:
        self.t_label.setText(f"t = {t:.2f}")
        self.view.set_image(image, f"t = {t:.2f}")

    def show_strip(self, strip: np.ndarray) -> None:
        ts = np.linspace(0, 1, len(strip))
        self.strip_grid.set_images(strip, columns=len(strip), captions=[f"{t:.2f}" for t in ts])

    def clear(self) -> None:
        self.strip_grid.clear()
        self.view.set_image(None, "")

    def set_enabled(self, on: bool) -> None:
        for w in (self.t_slider, self.png_btn, self.gif_btn, self.steps):
            w.setEnabled(on)

    def _export_dialog(self, kind: str) -> None:
        name, filt = ("interpolation.gif", "GIF (*.gif)") if kind == "gif" else ("interpolation.png", "PNG (*.png)")
        path, _ = QFileDialog.getSaveFileName(self, "Export interpolation", name, filt)
        if path:
            self.exportChosen.emit(kind, path)
