"""The diffusion model's grid beside the VAE's ("compare with diffusion"): the same rows, columns and seed, sampled
for seconds as its own task ("diffusion") with progress and cancel. Temperature and same-noise do not change it, so
a VAE grid that follows them does not restart it."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.latent.sampling import diffusion_grid
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid


class DiffusionComparison(QWidget):
    def __init__(self, state: AppState, tasks: PanelTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = tasks
        self.runs = 0                       # diffusion grids started (a test counts them)
        self._key: tuple | None = None      # settings of the diffusion grid shown or being sampled
        self.grid = ImageGrid()
        self.title = QLabel("diffusion")
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title, 0, 0)
        lay.addWidget(self.progress, 0, 1)
        lay.addWidget(self.cancel_btn, 0, 2)
        lay.addWidget(self.grid, 1, 0, 1, 3)
        self.setVisible(False)

    def start(self, rows: list[int], n: int, seed: int, vae_ms: float) -> None:
        """Sample the diffusion grid of these rows (those the diffusion model has), unless it is the one shown."""
        diff = self.state.diffusion
        if diff is None or not rows:
            return
        n_classes = diff.model.num_classes
        rows = [c for c in rows if c < n_classes] if n_classes else [0]
        key = (diff.model, tuple(rows), n, seed)
        if key == self._key:
            return
        self.cancel()
        self._key = key
        self.runs += 1
        self.title.setText("diffusion: sampling…")
        self.cancel_btn.setEnabled(True)
        start = time.perf_counter()
        self.tasks.start("diffusion", diffusion_grid, diff.model, rows, n, seed=seed,
                         on_result=lambda imgs: self._on_done(imgs, rows, n, start, vae_ms), progress=self.progress,
                         status=lambda text: self.title.setText(f"diffusion {text}"),
                         on_failed=self._on_failed, on_finished=lambda _: self.cancel_btn.setEnabled(False))

    def _on_done(self, imgs: np.ndarray | None, rows: list[int], n: int, start: float, vae_ms: float) -> None:
        if imgs is None or self.state.diffusion is None:
            return
        secs = time.perf_counter() - start
        names = self.state.diffusion.meta.class_names
        self.grid.set_images(imgs, columns=n, row_labels=[names[c] for c in rows] if names else None)
        self.title.setText(f"diffusion: {len(imgs)} samples in {secs:.1f} s (VAE: {vae_ms:.0f} ms)")
        self.cancel_btn.setEnabled(False)

    def _on_failed(self, _message: str, _details: str) -> None:
        self._key = None                    # the same settings may be tried again

    def cancel(self) -> None:
        if self.tasks.cancel("diffusion"):  # still sampling: its result is dropped
            self.title.setText("diffusion: cancelled")
        self._key = None
        self.cancel_btn.setEnabled(False)
