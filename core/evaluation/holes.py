"""The prior's holes: how much of a sampler's mass lands where the data's latents never go.

A VAE's aggregate posterior (its training images' posterior means) does not fill its prior N(0, I); a z drawn where
no image was encoded decodes to a blurry or ambiguous image (Ghosh et al. 2020; Dai & Wipf 2019 call the mismatch
the reason two-stage VAEs help). The hole score measures the mismatch in the latent space itself, per class: a sampled
z is "in a hole" when its nearest data latent (of the same class) is farther from it than that data latent's own k-th
nearest data neighbour, i.e. the sample falls outside every data point's k-NN ball there (the test of Kynkäänniemi et
al.'s precision, with the ball of the nearest point only). The score is the share of samples in a hole: 0 when a
sampler stays on the data, near 1 for a prior whose mass is elsewhere (N(0, I) against posterior means that shrink
towards the origin in 24 dimensions, say).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The data's own k-th neighbour distance is each ball's radius; 5 keeps the radius stable with ~30 points per class
# (the digits test split) without covering the space between classes.
DEFAULT_HOLE_K = 5


@dataclass(frozen=True)
class HoleScore:
    """The share of samples in a hole, over all classes and per class (NaN for a class with too few data points)."""

    score: float
    per_class: tuple[float, ...]
    k: int

    def as_dict(self, prefix: str = "") -> dict[str, object]:
        """JSON-ready: a NaN (no class had enough data points) is None."""
        return {f"{prefix}hole_score": None if np.isnan(self.score) else self.score,
                f"{prefix}hole_score_per_class": [None if np.isnan(v) else v for v in self.per_class]}


def _kth_neighbour_radius(data: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row, (N,)."""
    d = torch.cdist(data, data)
    d.fill_diagonal_(float("inf"))
    return d.kthvalue(k, dim=1).values


def _in_hole(data: torch.Tensor, radius: torch.Tensor, samples: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    out = []
    for start in range(0, len(samples), chunk):
        d = torch.cdist(samples[start:start + chunk], data)
        nearest, j = d.min(dim=1)
        out.append(nearest > radius[j])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def hole_score(data: np.ndarray, data_labels: np.ndarray | None, samples: np.ndarray,
               sample_labels: np.ndarray | None, *, k: int = DEFAULT_HOLE_K) -> HoleScore:
    """Share of `samples` (M, D) whose nearest data latent of their class (rows of `data` (N, D) with the same label)
    lies farther than that latent's own k-th data neighbour. Labels None: one class. A class with k or fewer data
    points is left out (NaN) and so are its samples."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    data_t = torch.as_tensor(np.asarray(data, dtype=np.float32))
    samples_t = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if data_t.ndim != 2 or samples_t.ndim != 2 or data_t.shape[1] != samples_t.shape[1]:
        raise ValueError(f"need data (N, D) and samples (M, D), got {tuple(data_t.shape)} and "
                         f"{tuple(samples_t.shape)}")
    dl = np.zeros(len(data_t), np.int64) if data_labels is None else np.asarray(data_labels, np.int64).ravel()
    sl = np.zeros(len(samples_t), np.int64) if sample_labels is None else np.asarray(sample_labels, np.int64).ravel()
    classes = np.union1d(np.unique(sl), np.unique(dl))
    holes, counted, per_class = 0, 0, []
    for c in range(int(classes.max()) + 1 if len(classes) else 0):
        d_rows, s_rows = dl == c, sl == c
        if d_rows.sum() <= k or not s_rows.any():
            per_class.append(float("nan"))
            continue
        class_data = data_t[torch.from_numpy(d_rows)]
        hole = _in_hole(class_data, _kth_neighbour_radius(class_data, k), samples_t[torch.from_numpy(s_rows)])
        per_class.append(float(hole.float().mean()))
        holes += int(hole.sum())
        counted += len(hole)
    return HoleScore(holes / counted if counted else float("nan"), tuple(per_class), k)
