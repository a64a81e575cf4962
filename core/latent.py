"""Latent-space tools for a trained VAE: encode a split, decode, interpolate, traverse, sample grids.

Everything here is Qt-free and works on CPU numpy arrays at its edges (only copies cross threads); the 2-D maps and
the map-position -> latent lookup are in core/projection.py.

A note on the conditional VAE: its encoder sees the label, so z codes the *style* of an image and the class enters
the decoder through `label_embedding(y)` (added to z for conditioning="add"). Every decode therefore takes labels,
and a class morph is a walk of the label embedding with z held fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.errors import UserError

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class Latents:
    """A split encoded by a VAE; all arrays are CPU numpy, row i is image i of the split."""

    mu: np.ndarray            # (N, D) float32, posterior means
    logvar: np.ndarray        # (N, D) float32
    labels: np.ndarray        # (N,) int64
    recon_error: np.ndarray   # (N,) float32, mean squared pixel error of the reconstruction from mu ([0, 1] scale)
    kl: np.ndarray            # (N,) float32, KL(q(z|x,y) || N(0, I)) in nats

    def __len__(self) -> int:
        return len(self.mu)

    @property
    def kl_per_dim(self) -> np.ndarray:
        """(D,) the mean KL of each latent dimension over the split (what orders the traversal sliders)."""
        return (0.5 * (self.mu ** 2 + np.exp(self.logvar) - 1.0 - self.logvar)).mean(axis=0).astype(np.float32)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _labels_for(model: nn.Module, labels) -> torch.Tensor | None:
    """Labels as the model wants them: None for an unconditional model."""
    if not getattr(model, "num_classes", 0):
        return None
    return torch.as_tensor(np.asarray(labels), dtype=torch.long, device=_device(model)).reshape(-1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [0, 1] (B, C, H, W) -> uint8 (B, H, W, C) numpy, the form the GUI and PNG writers take."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def encode_split(model: nn.Module, split, *, batch_size: int = 512, progress: Progress | None = None,
                 should_stop: ShouldStop | None = None) -> Latents | None:
    """Encode every image of a `core.data.Split` -> Latents; None if stopped.

    Also reconstructs each image from its mean, for the reconstruction error the map can be coloured by.
    """
    from core.data import as_float  # noqa: PLC0415 - keeps this module importable without the data helper's deps

    n = len(split)
    if n == 0:
        raise UserError("this split has no images; choose another split or a dataset with more images")
    device = _device(model)
    was_training = model.training
    model.eval()
    mus, logvars, errs = [], [], []
    done = 0
    try:
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                return None
            x = as_float(split.images[start:start + batch_size].to(device))
            y = _labels_for(model, split.labels[start:start + batch_size].cpu().numpy())
            mu, logvar = model.encode(x, y)
            recon = model.decode(mu, y)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
            errs.append((recon.float() - x.float()).pow(2).flatten(1).mean(1).cpu())
            done += len(x)
            if progress is not None:
                progress(done, n)
    finally:
        model.train(was_training)
    mu = torch.cat(mus).numpy()
    logvar = torch.cat(logvars).numpy()
    kl = (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).sum(axis=1).astype(np.float32)
    return Latents(mu=mu, logvar=logvar, labels=split.labels.cpu().numpy().astype(np.int64),
                   recon_error=torch.cat(errs).numpy(), kl=kl)


@torch.no_grad()
def decode_latents(model: nn.Module, z: np.ndarray, labels: Sequence[int] | np.ndarray | int | None = None
                   ) -> np.ndarray:
    """(M, D) latents (+ one label or M labels) -> uint8 (M, H, W, C) images."""
    zt = torch.as_tensor(np.atleast_2d(np.asarray(z, dtype=np.float32)), device=_device(model))
    y = None
    if getattr(model, "num_classes", 0):
        if labels is None:
            raise ValueError("a class-conditional VAE needs labels to decode")
        lab = np.array(np.broadcast_to(np.asarray(labels, dtype=np.int64).reshape(-1), (len(zt),)))
        y = _labels_for(model, lab)
    return to_uint8(model.decode(zt, y))


def nearest_neighbours(mu: np.ndarray, index: int, k: int = 8) -> np.ndarray:
    """Indices of the k nearest latents to mu[index] (Euclidean, itself excluded), nearest first."""
    d = np.linalg.norm(mu - mu[index], axis=1)
    d[index] = np.inf
    k = min(k, len(mu) - 1)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(d, k - 1)[:k]
    return part[np.argsort(d[part], kind="stable")].astype(np.int64)


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


@torch.no_grad()
def class_morph(model: nn.Module, z: np.ndarray, y0: int, y1: int, t) -> np.ndarray:
    """Hold z and walk the label embedding from class y0 to y1 -> uint8 images (T, H, W, C) (T = 1 for scalar t).

    With additive conditioning, decode(z, y0) sees z + e(y0); moving the input to z + (1-t) e(y0) + t e(y1) is the
    same as decoding z + t (e(y1) - e(y0)) with label y0, so only the public API is needed.
    """
    if not getattr(model, "num_classes", 0):
        raise UserError("class morph needs a class-conditional VAE; this one is unconditional")
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "conditioning", "add") != "add":
        raise UserError("class morph needs a VAE trained with conditioning='add' (this one concatenates the label)")
    dev = _device(model)
    e = model.label_embedding(torch.tensor([y0, y1], device=dev)).float().cpu().numpy()
    ts, _ = _ts(t)
    zs = np.asarray(z, dtype=np.float32).reshape(1, -1) + ts.astype(np.float32) * (e[1] - e[0])
    return decode_latents(model, zs, y0)


# --- traversal -------------------------------------------------------------------------------------------------------

def traversal_order(kl_per_dim: np.ndarray) -> np.ndarray:
    """Latent dimensions sorted by KL, largest first (the active dimensions lead; ties keep index order)."""
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    return np.argsort(-kl, kind="stable").astype(np.int64)


def active_dims(kl_per_dim: np.ndarray, threshold: float = 0.01) -> int:
    """How many dimensions carry information (KL above `threshold` nats; the usual "active units" criterion)."""
    return int((np.asarray(kl_per_dim) > threshold).sum())


def traverse(z: np.ndarray, dim: int, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Copies of z with z[dim] offset by each value -> (len(values), D) float32 ("-3..3 around the current point")."""
    base = np.asarray(z, dtype=np.float32).reshape(-1)
    if not 0 <= dim < len(base):
        raise ValueError(f"dim {dim} is outside the latent's {len(base)} dimensions")
    vals = np.asarray(values, dtype=np.float32).reshape(-1)
    out = np.repeat(base[None], len(vals), axis=0)
    out[:, dim] += vals
    return out


# --- sampler grid ----------------------------------------------------------------------------------------------------

def grid_noise(n_rows: int, n: int, latent_dim: int, *, temperature: float, seed: int, same_noise: bool) -> np.ndarray:
    """The z of a sampler grid, (n_rows * n, D): N(0, temperature^2), one draw per cell or one row shared by all."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1 if same_noise else n_rows, n, latent_dim, generator=g) * float(temperature)
    return z.expand(n_rows, n, latent_dim).reshape(n_rows * n, latent_dim).numpy().copy()


@torch.no_grad()
def sample_grid(model: nn.Module, classes: Sequence[int], n: int, *, temperature: float = 1.0, seed: int = 0,
                same_noise: bool = False) -> np.ndarray:
    """Samples, one row per class, n per row -> uint8 (len(classes) * n, H, W, C).

    same_noise: every row uses the same n latents, so a column differs only in class (style vs content).
    An unconditional model ignores `classes` and returns one row.
    """
    if n < 1:
        raise UserError(f"the grid needs at least one column, got {n}")
    conditional = bool(getattr(model, "num_classes", 0))
    rows = list(classes) if conditional else [0]
    if not rows:
        raise UserError("choose at least one class to sample")
    z = grid_noise(len(rows), n, model.latent_dim, temperature=temperature, seed=seed, same_noise=same_noise)
    labels = np.repeat(np.asarray(rows, dtype=np.int64), n)
    return decode_latents(model, z, labels if conditional else None)


@torch.no_grad()
def interpolate_images(model: nn.Module, z0: np.ndarray, y0: int, z1: np.ndarray, y1: int, t, *,
                       spherical: bool = False) -> np.ndarray:
    """Decode the path from (z0, class y0) to (z1, class y1) -> uint8 (T, H, W, C) (T = 1 for scalar t).

    z follows lerp or slerp; for a conditional model the label embedding moves linearly from y0's to y1's (as in
    `class_morph`), so endpoints of different classes blend instead of jumping at t = 0.5.
    """
    zs = np.atleast_2d((slerp if spherical else lerp)(z0, z1, t))
    if getattr(model, "num_classes", 0) and y0 != y1:
        cfg = getattr(model, "cfg", None)
        if cfg is not None and getattr(cfg, "conditioning", "add") != "add":
            ts, _ = _ts(t)                    # concatenated labels cannot be blended: switch at the midpoint
            labels = np.where(ts.reshape(-1) < 0.5, y0, y1)
            return decode_latents(model, zs, labels)
        e = model.label_embedding(torch.tensor([y0, y1], device=_device(model))).float().cpu().numpy()
        ts, _ = _ts(t)
        zs = zs + ts.astype(np.float32) * (e[1] - e[0])
    return decode_latents(model, zs, y0)


@torch.no_grad()
def diffusion_grid(model: nn.Module, classes: Sequence[int], n: int, *, seed: int = 0, steps: int | None = None,
                   progress: Progress | None = None, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """The diffusion model's grid for the same rows as `sample_grid` -> uint8 (rows * n, H, W, C); None if stopped."""
    rows = list(classes) if getattr(model, "num_classes", 0) else [0]
    labels = torch.as_tensor(np.repeat(np.asarray(rows, dtype=np.int64), n))
    g = torch.Generator().manual_seed(int(seed))
    x = model.sample(labels, steps=steps, generator=g, progress=progress, should_stop=should_stop)
    return None if x is None else to_uint8(x)
