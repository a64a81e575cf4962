"""Paths through latent space: lerp and slerp between latents, a class morph (the label embedding walks with z held
fixed), traversal of one dimension (ordered by KL), and the decoded images along a path."""

from __future__ import annotations

import numpy as np
import torch

from core.images import to_uint8
from core.latent.encoding import _device, decode_latents
from core.models.protocol import LatentVariableModel

# --- interpolation ---------------------------------------------------------------------------------------------------

def _ts(t) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, dtype=np.float64)
    return arr.reshape(-1, 1), arr.ndim == 0


def lerp(z0: np.ndarray, z1: np.ndarray, t) -> np.ndarray:
    """Linear interpolation; t a number -> (D,), t an array of T values -> (T, D)."""
    a, b = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    ts, scalar = _ts(t)
    out = (1 - ts) * a + ts * b
    return (out[0] if scalar else out).astype(np.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation: walks the great circle between the directions while the norm moves linearly from
    |z0| to |z1| (so an interpolant between two typical prior samples stays at a typical radius, where lerp would cut
    through the low-density middle). Parallel or zero vectors fall back to lerp; t as in `lerp`."""
    a, b = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    ts, scalar = _ts(t)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return lerp(a, b, t)
    ua, ub = a / na, b / nb
    omega = float(np.arccos(np.clip(ua @ ub, -1.0, 1.0)))
    if omega < 1e-6:                                 # same direction: the circle is a point, only the norm moves
        out = ua * ((1 - ts) * na + ts * nb)
    else:
        if np.pi - omega < 1e-6:                     # opposite: any great circle works; pick a fixed orthogonal one
            ortho = np.zeros_like(ua)
            ortho[np.argmin(np.abs(ua))] = 1.0
            ortho -= (ortho @ ua) * ua
            ub_dir = ortho / np.linalg.norm(ortho)
            # go through the orthogonal direction: angle pi split over the path
            ang = ts * np.pi
            direction = np.cos(ang) * ua + np.sin(ang) * ub_dir
        else:
            s = np.sin(omega)
            direction = (np.sin((1 - ts) * omega) / s) * ua + (np.sin(ts * omega) / s) * ub
        out = direction * ((1 - ts) * na + ts * nb)
    return (out[0] if scalar else out).astype(np.float32)


# --- traversal -------------------------------------------------------------------------------------------------------

def traversal_order(kl_per_dim: np.ndarray) -> np.ndarray:
    """Latent dimensions sorted by KL, largest first (the active dimensions lead; ties keep index order)."""
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    return np.argsort(-kl, kind="stable").astype(np.int64)


def active_dims(kl_per_dim: np.ndarray, threshold: float = 0.01) -> int:
    """How many dimensions carry information (KL above `threshold` nats; the usual "active units" criterion)."""
    return int((np.asarray(kl_per_dim) > threshold).sum())


@torch.no_grad()
def interpolate_images(model: LatentVariableModel, z0: np.ndarray, y0: int, z1: np.ndarray, y1: int, t, *,
                       spherical: bool = False, dims: slice | None = None) -> np.ndarray:
    """Decode the path from (z0, class y0) to (z1, class y1) -> uint8 (T, H, W, C) (T = 1 for scalar t).

    z follows lerp or slerp; for a conditional model the label embedding moves linearly from y0's to y1's, so
    endpoints of different classes blend instead of jumping at t = 0.5. With z0 == z1 this is a class morph: z (the
    style) held fixed while the class walks from y0 to y1. With additive conditioning, decode(z, y0) sees z + e(y0),
    so moving the input to z + (1-t) e(y0) + t e(y1) is decoding z + t (e(y1) - e(y0)) with label y0. Otherwise
    (concatenated labels, labels in each decoder stage) the decoder is given class weights (1-t, t) on (y0, y1).
    With `dims` (one layer's slice of a hierarchical VAE's code) only those coordinates walk, from z0's to z1's;
    the others stay at z0's.
    """
    if dims is None:
        zs = np.atleast_2d((slerp if spherical else lerp)(z0, z1, t))
    else:
        zs = np.repeat(np.atleast_2d(np.asarray(z0, np.float32)), len(_ts(t)[0]), axis=0)
        zs[:, dims] = np.atleast_2d((slerp if spherical else lerp)(z0[dims], z1[dims], t))
    if model.num_classes and y0 != y1:
        if not model.label_is_additive:
            # concatenated (or per-stage) labels: the decoder takes class weights, (1 - t) on y0 and t on y1, which
            # blend every label embedding it uses
            ts, _ = _ts(t)
            w = np.zeros((len(zs), model.num_classes), dtype=np.float32)
            w[:, y0] = 1 - ts.reshape(-1)
            w[:, y1] = ts.reshape(-1)
            device = _device(model)
            return to_uint8(model.decode(torch.as_tensor(zs, dtype=torch.float32, device=device),
                                         torch.as_tensor(w, device=device)))
        e = model.label_embedding(torch.tensor([y0, y1], device=_device(model))).float().cpu().numpy()
        ts, _ = _ts(t)
        zs = zs + ts.astype(np.float32) * (e[1] - e[0])
    return decode_latents(model, zs, y0)


