"""A selection of dataset images (the latent map's lasso, search or worst reconstructions) as the app's state holds
it, and how the main window hands it to the panel it is sent to.

The map writes `state.set_selection(...)` and `state.send_selection(target)`; it never calls another panel
(DESIGN.md: hand-offs go through the state). The main window, which owns the panels, delivers it with `deliver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TARGETS = ("sampler", "interpolate", "restore")


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


def deliver(selection: ImageSelection, target: str, panels: dict[str, Any]) -> str:
    """Hand `selection` to the panel `target` names; returns a line for the status bar saying what it did."""
    panel = panels.get(target)
    if panel is None or len(selection) == 0:
        return f"the {target} panel is not available" if panel is None else "the selection is empty"
    n = len(selection)
    if target == "interpolate":
        # the first two images become the path's endpoints (any split, in the order the grid shows): their latents
        # when the panel shows the model that encoded them, else the images encoded by the panel's own model
        same_model = selection.model is not None and selection.model is panel.state.vae_model
        if not same_model and selection.problem_with(panel.state.dataset):
            return selection.problem_with(panel.state.dataset)
        for k in range(min(2, n)):
            if same_model:
                panel.set_endpoint(k, selection.latents[k], int(selection.labels[k]))
            else:
                panel.set_endpoint_image(k, selection.splits[k], int(selection.indices[k]))
        return f"interpolating between the first {min(2, n)} of {n} selected images" + \
            ("" if same_model else " (encoded by the model this panel shows)")
    if target == "restore":
        if selection.problem_with(panel.state.dataset):
            return selection.problem_with(panel.state.dataset)
        panel.select_image(selection.splits[0], int(selection.indices[0]))
        return f"{selection.splits[0]} image {int(selection.indices[0])} (the first of {n} selected) in Denoise / " \
               "Enhance"
    if target == "sampler":
        return panel.use_selection(selection)
    raise ValueError(f"unknown target {target!r}; one of {TARGETS}")
