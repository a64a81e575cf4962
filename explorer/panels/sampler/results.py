"""What the Sampler shows: the VAE grid under a title that says where its z came from (or that it is out of date, and
why), and beside it the selected sample, large, with its hand-off ("Send to interpolation")."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_widgets import PixelView

OUT_OF_DATE_STYLE = "color: #a05a00;"


class SampleGridView(QWidget):
    """The VAE grid and its title. Titles and "out of date" notes wrap; they never widen the window. (Not superqt's
    QElidingLabel: in a layout its wrapped height stays one line, so the reason a grid is out of date was cut off.)"""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("VAE")
        self.title.setWordWrap(True)
        self.grid = ImageGrid()
        self._shown = ""                # the title of the grid on screen (what it shows)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.grid, 1)

    def show_grid(self, images: np.ndarray, columns: int, row_labels: list[str] | None, title: str) -> None:
        self.grid.set_images(images, columns=columns, row_labels=row_labels)
        self._shown = title
        self.title.setText(title)
        self.title.setStyleSheet("")

    def clear(self) -> None:
        self.grid.clear()

    def mark_out_of_date(self, why: str) -> None:
        """Say above the grid that it does not show the chosen settings (or that there is none yet), and why."""
        has_grid = self.grid.count() > 0
        shown = self._shown or "VAE: no grid yet"
        self.title.setText(f"{shown}  —  out of date: {why}" if has_grid else f"VAE: {why}")
        self.title.setStyleSheet(OUT_OF_DATE_STYLE)


class SelectedSample(QWidget):
    """The sample clicked in the grid, large, and "Send to interpolation" (a hand-off through the state)."""

    sendClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.large = PixelView(minimum=128)
        self.large.setMaximumHeight(280)
        self.send_btn = QPushButton("Send to interpolation")
        self.send_btn.setEnabled(False)
        self.send_btn.clicked.connect(self.sendClicked.emit)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("selected sample"))
        lay.addWidget(self.large, 1)
        lay.addWidget(self.send_btn)
        lay.addStretch(0)

    def show_sample(self, image: np.ndarray | None, caption: str = "") -> None:
        self.large.set_image(image, caption)
        self.send_btn.setEnabled(image is not None)
