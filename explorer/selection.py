"""A selection of dataset images (the latent map's lasso, search or worst reconstructions) as the app's state holds
it.

The map writes `state.set_selection(...)` and `state.send_selection(target)`, which turns it into a hand-off value
(explorer/handoffs.py) the receiving panel observes; no panel calls another (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class ImageSelection:
    """Images picked in one panel, in the order the user sees them. Row k is image `indices[k]` of split
    `splits[k]`; `latents` are the posterior means the picking panel encoded them to (with its model)."""

    source: str                 # the panel that made it, e.g. "latent map"
    splits: tuple[str, ...]     # (M,) split name of each image
    indices: np.ndarray         # (M,) int64 index within its split
    labels: np.ndarray          # (M,) int64 class
    latents: np.ndarray         # (M, D) float32
    description: str = ""       # how it was made ("lasso", "search '7'", "50 worst reconstructions")
    model: Any = None           # the network that encoded `latents` (their meaning belongs to it)
    dataset: Any = None         # the Dataset whose splits `indices` index

    def problem_with(self, dataset: Any) -> str:
        """Why the selection's images cannot be read from `dataset` (another dataset loaded since), or ""."""
        if self.dataset is not None and dataset is not self.dataset:
            return "the selection was made on another dataset than the one loaded now; select again in the latent map"
        return ""

    def __len__(self) -> int:
        return len(self.indices)
