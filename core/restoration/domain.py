"""Is an image like the data a VAE was trained on? Its reconstruction error against the range of the same error on
held-out images of that dataset.

Why the reconstruction error: a VAE reconstructs what it was trained on well and anything else badly (a random-noise
image reconstructs about ten times worse than a held-out digit with the bundled digits VAE), and the restorers'
scores only mean something for images the models can explain. The error is the one the VAE restorer sees: no label
is given, every label is tried and the best kept (`restore_vae`), mean squared error per pixel in [0, 1] units.

The reference range is the 1st to 99th percentile of that error over up to `n_images` validation images (topped up
from the training split when the validation split is small); an image is "far" when its error lies outside the range
by more than a factor `FAR` (so a digit a little worse than the worst held-out ones is not flagged). Computed once per
model, off the GUI thread (a few seconds on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.data.datasets import Dataset
from core.models.protocol import LatentVariableModel, is_vqvae
from core.restoration.learned import Progress, ShouldStop, restore_codes, restore_vae

FAR = 1.5           # an error this many times beyond the range is "unlike the training data"
PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class DomainRange:
    """The reconstruction errors seen on `n` held-out images of `dataset`: `low`..`high` (1st..99th percentile)."""
    low: float
    high: float
    n: int
    dataset: str

    def is_far(self, error: float) -> bool:
        return error > self.high * FAR or error < self.low / FAR


@torch.no_grad()
def reconstruction_errors(vae: LatentVariableModel, images: torch.Tensor, *, batch_size: int = 128,
                          progress: Progress = None, should_stop: ShouldStop = None) -> np.ndarray | None:
    """Per-image label-free reconstruction MSE of (N, C, H, W) images (uint8, or float in [0, 1]); None if stopped."""
    assert images.ndim == 4, f"images must be (N, C, H, W), not {tuple(images.shape)}"
    out = []
    for start in range(0, len(images), batch_size):
        if should_stop is not None and should_stop():
            return None
        x = images[start:start + batch_size]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        restored = restore_codes(vae, x) if is_vqvae(vae) else restore_vae(vae, x)   # a VQ-VAE: its nearest codes
        out.append((restored - x).pow(2).flatten(1).mean(1).numpy())
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def reference_range(vae: LatentVariableModel, dataset: Dataset, *, n_images: int = 512, progress: Progress = None,
                    should_stop: ShouldStop = None) -> DomainRange | None:
    """The range of reconstruction errors on held-out images of `dataset` (validation first, then training images);
    None when stopped or when the dataset has no images."""
    assert n_images > 0, f"n_images must be positive, not {n_images}"
    parts = [dataset.val.images[:n_images]]
    if len(parts[0]) < n_images:
        parts.append(dataset.train.images[:n_images - len(parts[0])])
    images = torch.cat(parts)
    if len(images) == 0:
        return None
    errors = reconstruction_errors(vae, images, progress=progress, should_stop=should_stop)
    if errors is None:
        return None
    low, high = np.percentile(errors, PERCENTILES)
    return DomainRange(float(low), float(high), len(errors), dataset.meta.name)


def domain_note(error: float, reference: DomainRange) -> str:
    """A plain-words line when the error is outside the reference range (far), else ""."""
    if not reference.is_far(error):
        return ""
    return (f"this image is unlike the training data (reconstruction error {error:.2g}, {reference.dataset} range "
            f"{reference.low:.2g}–{reference.high:.2g}): scores may not mean much")
