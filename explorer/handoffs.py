"""Hand-offs between panels, as typed values the app's state holds (DESIGN.md: no panel calls another).

A panel that sends something writes one of these to `AppState.hand_off(...)`; the panel it is meant for observes the
state's signal and takes it; the main window only shows that panel. Each value carries what the receiver needs to
use it with *its own* model: a latent names the network whose code it is (a panel pinned to another model decodes it
with that network and encodes the image with its own), and a dataset image names its dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.data.datasets import Dataset
    from core.models.protocol import LatentVariableModel
    from explorer.selection import ImageSelection

INTERPOLATE, RESTORE, SAMPLER = "interpolate", "restore", "sampler"
TARGETS = (SAMPLER, INTERPOLATE, RESTORE)


@dataclass(frozen=True, eq=False)
class Endpoint:
    """One end of an interpolation path: latent `z` of `model` with class `label`; when it is a dataset image,
    also where it is (`split`, `index` of `dataset`), so a panel showing another model encodes the image itself."""

    z: np.ndarray                     # (D,) float32, in `model`'s code
    label: int
    model: LatentVariableModel | None
    split: str = ""
    index: int = -1
    dataset: Dataset | None = None

    @property
    def is_image(self) -> bool:
        return bool(self.split) and self.index >= 0


@dataclass(frozen=True, eq=False)
class InterpolationEndpoints:
    """Sent to Interpolation: one endpoint fills the next free end (A, then B, then A ...); two set A and B."""

    endpoints: tuple[Endpoint, ...]
    description: str                 # for the status line: "a sample of the Sampler", "the first 2 of 12 selected"


@dataclass(frozen=True, eq=False)
class RestorationImage:
    """Sent to Denoise / Enhance: image `index` of `split` of `dataset`."""

    split: str
    index: int
    dataset: Dataset | None
    description: str


@dataclass(frozen=True, eq=False)
class SamplerRegion:
    """Sent to the Sampler: sample the region of latent space these images cover."""

    selection: ImageSelection


def endpoints_of_selection(selection: ImageSelection) -> InterpolationEndpoints:
    """The first two images of a selection (in the order its grid shows) as the path's ends."""
    n = min(2, len(selection))
    ends = tuple(Endpoint(selection.latents[k], int(selection.labels[k]), selection.model, selection.splits[k],
                          int(selection.indices[k]), selection.dataset) for k in range(n))
    return InterpolationEndpoints(ends, f"the first {n} of {len(selection)} selected images")
