"""Sampler grids: one row per class, n samples a row, from a VAE (z ~ N(0, T^2), or from a density fitted to the
encoded training set: core/latent/density.py) or a diffusion model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.errors import UserError
from core.images import to_uint8
from core.latent.density import LatentDensity
from core.latent.encoding import Progress, ShouldStop, decode_latents
from core.models.protocol import GenerativeModel, LatentVariableModel

# --- sampler grid ----------------------------------------------------------------------------------------------------

def grid_noise(n_rows: int, n: int, latent_dim: int, *, temperature: float, seed: int, same_noise: bool) -> np.ndarray:
    """The z of a sampler grid, (n_rows * n, D): N(0, temperature^2), one draw per cell or one row shared by all."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1 if same_noise else n_rows, n, latent_dim, generator=g) * float(temperature)
    return z.expand(n_rows, n, latent_dim).reshape(n_rows * n, latent_dim).numpy().copy()


def grid_latents(rows: Sequence[int], n: int, latent_dim: int, *, temperature: float, seed: int, same_noise: bool,
                 density: LatentDensity | None = None) -> np.ndarray:
    """The z of a sampler grid for `rows` (class labels): `grid_noise`, or with a fitted `density` that noise mapped
    through each row's class mixture (the same noise and the same component draw in every row when `same_noise`)."""
    z = grid_noise(len(rows), n, latent_dim, temperature=temperature, seed=seed, same_noise=same_noise)
    if density is None:
        return z
    # Drawn after the noise from a generator of its own: the prior grid of a seed stays what it was.
    g = torch.Generator().manual_seed(int(seed) + 1)
    u = torch.rand(1 if same_noise else len(rows), n, generator=g).expand(len(rows), n).reshape(-1).numpy()
    labels = np.repeat(np.asarray(rows, dtype=np.int64), n)
    return density.latents(labels, z.astype(np.float64), u.astype(np.float64))


@torch.no_grad()
def sample_grid(model: LatentVariableModel, classes: Sequence[int], n: int, *, temperature: float = 1.0, seed: int = 0,
                same_noise: bool = False, density: LatentDensity | None = None) -> np.ndarray:
    """Samples, one row per class, n per row -> uint8 (len(classes) * n, H, W, C).

    same_noise: every row uses the same n latents, so a column differs only in class (style vs content).
    An unconditional model ignores `classes` and returns one row. `density`: z from it instead of the prior.
    """
    if n < 1:
        raise UserError(f"the grid needs at least one column, got {n}")
    conditional = model.num_classes > 0
    rows = list(classes) if conditional else [0]
    if not rows:
        raise UserError("choose at least one class to sample")
    z = grid_latents(rows, n, model.latent_dim, temperature=temperature, seed=seed,
                     same_noise=same_noise, density=density)
    labels = np.repeat(np.asarray(rows, dtype=np.int64), n)
    return decode_latents(model, z, labels if conditional else None)


@torch.no_grad()
def diffusion_grid(model: GenerativeModel, classes: Sequence[int], n: int, *, seed: int = 0, steps: int | None = None,
                   progress: Progress | None = None, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """The diffusion model's grid for the same rows as `sample_grid` -> uint8 (rows * n, H, W, C); None if stopped."""
    rows = list(classes) if model.num_classes else [0]
    labels = torch.as_tensor(np.repeat(np.asarray(rows, dtype=np.int64), n))
    g = torch.Generator().manual_seed(int(seed))
    x = model.sample(labels, steps=steps, generator=g, progress=progress, should_stop=should_stop)
    return None if x is None else to_uint8(x)
