"""Sharpness: the high-frequency energy of generated images relative to real ones (1.0 = as sharp as the real images).

A VAE's samples are blurry (the survey, §4.2): its Gaussian or Bernoulli decoder predicts the mean image, which averages
edges away. Blur removes high spatial frequencies, which the Laplacian (a discrete second derivative) measures: the
mean squared Laplacian of an image is its energy weighted towards the highest frequencies (|ω|⁴ in the spectrum).
Dividing by the same energy of real test images makes the number independent of the dataset: below 1 the samples are
blurrier than the data, near 1 as sharp, above 1 noisier (noise is all high frequency, so a ratio far above 1 is not
"better").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

# The 4-neighbour discrete Laplacian, applied per image and channel (axes N and C are not mixed).
_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]


def laplacian_energy(images: Any) -> np.ndarray:
    """Mean squared Laplacian of each image, (N,); images (N, C, H, W), uint8 or float in [0, 1]."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {x.shape}")
    # mode="reflect" mirrors the border, so a flat margin (digits' black background) adds no false edges.
    response = ndimage.convolve(x, _LAPLACIAN, mode="reflect")
    return (response ** 2).mean(axis=(1, 2, 3))


def sharpness_ratio(generated: Any, real: Any) -> float:
    """Mean Laplacian energy of `generated` divided by that of `real`: 1.0 = as sharp as the real images."""
    reference = float(laplacian_energy(real).mean())
    if not reference > 0:
        raise ValueError("the real images have no high-frequency energy (all flat): sharpness is undefined")
    return float(laplacian_energy(generated).mean()) / reference
