"""SSIM and PSNR between image batches: the one image-quality measure the evaluation, the restorers' benchmark and
the panels share (scikit-image's implementations, data range 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

# An identical pair has infinite PSNR; we count it as this many dB so that a batch mean stays a finite number.
PSNR_CAP_DB = 100.0



def _as_nhwc_float(images: Any) -> np.ndarray:
    """uint8 or [0, 1] float images, tensor (N,C,H,W)/(C,H,W) or numpy (N,H,W,C)/(H,W,C)/(H,W) -> float64 (N,H,W,C)."""
    if isinstance(images, torch.Tensor):
        t = images.detach().cpu()
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[None]
        if t.ndim != 4:
            raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
        arr = t.permute(0, 2, 3, 1).numpy()
    else:
        arr = np.asarray(images)
        if arr.ndim == 2:
            arr = arr[None, :, :, None]
        elif arr.ndim == 3:
            arr = arr[None] if arr.shape[-1] in (1, 3) else arr[..., None]
        if arr.ndim != 4:
            raise ValueError(f"expected images (N, H, W, C), got shape {arr.shape}")
        if arr.shape[-1] not in (1, 3) and arr.shape[1] in (1, 3):  # numpy in channels-first order
            arr = arr.transpose(0, 2, 3, 1)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return np.clip(arr.astype(np.float64), 0.0, 1.0)


def ssim_psnr_per_image(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """SSIM and PSNR (dB) of each pair of images, data range 1 (uint8 inputs are scaled to [0, 1] first)."""
    x, y = _as_nhwc_float(a), _as_nhwc_float(b)
    if x.shape != y.shape:
        raise ValueError(f"image batches differ in shape: {x.shape} vs {y.shape}")
    _, h, w, c = x.shape
    # skimage's default 7x7 window needs images at least that big; use the largest odd window that fits.
    win = min(7, h, w)
    win -= 1 - win % 2
    if win < 3:
        raise ValueError(f"images of {h}x{w} pixels are too small for SSIM")
    ssim = np.empty(len(x))
    psnr = np.empty(len(x))
    for i in range(len(x)):
        if c == 1:
            ssim[i] = structural_similarity(x[i, ..., 0], y[i, ..., 0], data_range=1.0, win_size=win)
        else:
            ssim[i] = structural_similarity(x[i], y[i], data_range=1.0, win_size=win, channel_axis=-1)
        if np.array_equal(x[i], y[i]):
            psnr[i] = PSNR_CAP_DB
        else:
            psnr[i] = min(peak_signal_noise_ratio(x[i], y[i], data_range=1.0), PSNR_CAP_DB)
    return ssim, psnr


def ssim_psnr(a: Any, b: Any) -> tuple[float, float]:
    """Batch-mean SSIM and PSNR (dB) between two image batches (uint8, or floats in [0, 1]; tensors or numpy)."""
    ssim, psnr = ssim_psnr_per_image(a, b)
    return float(ssim.mean()), float(psnr.mean())


