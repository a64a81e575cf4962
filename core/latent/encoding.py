"""Encode a split with a VAE and decode latents back to images (CPU numpy at the edges: only copies cross threads).

A note on the conditional VAE: its encoder sees the label, so z codes the *style* of an image and the class enters
the decoder through `label_embedding(y)` (added to z for conditioning="add"). Every decode therefore takes labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import UserError
from core.images import as_float, to_uint8
from core.models.protocol import GenerativeModel, LatentVariableModel
from core.models.vae import gaussian_kl

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
        return gaussian_kl(torch.from_numpy(self.mu), torch.from_numpy(self.logvar)).mean(0).numpy()


def _device(model: GenerativeModel) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _labels_for(model: GenerativeModel, labels) -> torch.Tensor | None:
    """Labels as the model wants them: None for an unconditional model."""
    if not model.num_classes:
        return None
    return torch.as_tensor(np.asarray(labels), dtype=torch.long, device=_device(model)).reshape(-1)


@torch.no_grad()
def encode_split(model: LatentVariableModel, split, *, batch_size: int = 512, progress: Progress | None = None,
                 should_stop: ShouldStop | None = None) -> Latents | None:
    """Encode every image of a `core.data.Split` -> Latents; None if stopped.

    Also reconstructs each image from its mean, for the reconstruction error the map can be coloured by.
    """
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
    kl = gaussian_kl(torch.from_numpy(mu), torch.from_numpy(logvar)).sum(1).numpy()
    return Latents(mu=mu, logvar=logvar, labels=split.labels.cpu().numpy().astype(np.int64),
                   recon_error=torch.cat(errs).numpy(), kl=kl)


@torch.no_grad()
def encode_images(model: LatentVariableModel, images: torch.Tensor, labels: Sequence[int] | np.ndarray
                  ) -> np.ndarray:
    """Posterior means (M, D) float32 of a few dataset images (M, C, H, W) (uint8 or float in [0, 1])."""
    was_training = model.training
    model.eval()
    try:
        x = as_float(images.to(_device(model)))
        mu, _ = model.encode(x, _labels_for(model, np.asarray(labels, dtype=np.int64).reshape(-1)))
    finally:
        model.train(was_training)
    return mu.float().cpu().numpy()


def encode_indices(model: LatentVariableModel, dataset, splits: Sequence[str], indices: Sequence[int] | np.ndarray,
                   *, batch_size: int = 256, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """Posterior means (M, D) of dataset images picked anywhere (image k is `indices[k]` of split `splits[k]`), in
    that order; None if stopped. For a selection made with one model and used with another."""
    splits = np.asarray(list(splits))
    indices = np.asarray(indices, dtype=np.int64)
    out: np.ndarray | None = None
    for name in np.unique(splits):
        rows = np.flatnonzero(splits == name)
        part = dataset.split(str(name))
        beyond = indices[rows][indices[rows] >= len(part)]
        if len(beyond):
            raise UserError(f"image {int(beyond[0])} of the {name} split does not exist (it has {len(part)} images); "
                            "were these images picked in another dataset?")
        for start in range(0, len(rows), batch_size):
            if should_stop is not None and should_stop():
                return None
            chunk = rows[start:start + batch_size]
            idx = torch.as_tensor(indices[chunk])
            mu = encode_images(model, part.images[idx], part.labels[idx].cpu().numpy())
            if out is None:
                out = np.zeros((len(indices), mu.shape[1]), np.float32)
            out[chunk] = mu
    return out if out is not None else np.zeros((0, model.latent_dim), np.float32)


@torch.no_grad()
def decode_latents(model: LatentVariableModel, z: np.ndarray, labels: Sequence[int] | np.ndarray | int | None = None
                   ) -> np.ndarray:
    """(M, D) latents (+ one label or M labels) -> uint8 (M, H, W, C) images."""
    zt = torch.as_tensor(np.atleast_2d(np.asarray(z, dtype=np.float32)), device=_device(model))
    y = None
    if model.num_classes:
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


