"""The Fréchet distance between two feature sets (the FID's formula, on our judge classifier's features)."""

from __future__ import annotations

import numpy as np
from scipy import linalg


def fid_like(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, F).

    This is the formula of the FID, but the features come from our small per-dataset classifier, NOT from the
    Inception-v3 network: the numbers are only comparable between models judged by the same classifier on the same
    dataset, never with published FIDs. (torchmetrics' FID needs torch-fidelity and the Inception weights, which are
    a download this offline tool cannot rely on and would be a poor judge of 16-pixel digits anyway, so the distance
    is computed here with scipy.)
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sets must be (N, F) with the same F, got {real.shape} and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("the Fréchet distance needs at least two feature vectors on each side")
    mu1, mu2 = real.mean(0), fake.mean(0)
    cov1, cov2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    # tr sqrt(C1 C2) = tr sqrt(C1^1/2 C2 C1^1/2): the right side is symmetric PSD, so an eigendecomposition is exact and
    # stable; sqrtm of the non-symmetric product warns and may go complex when the covariances are singular, which
    # ReLU features (dead units) and few samples make them.
    root1 = _psd_sqrt(cov1)
    trace_covmean = float(np.sqrt(np.clip(linalg.eigvalsh(root1 @ cov2 @ root1), 0.0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_covmean)
    return max(value, 0.0)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (tiny negative eigenvalues from rounding -> 0)."""
    w, v = linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


