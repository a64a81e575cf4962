"""Spread matching for a learned latent prior: scale each class's draws about their mean so that their spread (the
trace of the class covariance) is the training latents'.

A diffusion prior fitted to a few hundred latents per class draws them a little too tight (its denoiser smooths the
score): on the real-MNIST top layer (per-dimension standardised, 6,000 steps) the spread of its draws is 12 % under
the data's for some classes, and the judge's k-NN recall, which grows with the samples' spread, rewards the Gaussian
mixture, whose components match the data's second moments by construction. `SpreadMatch` estimates, once per
sampling configuration, each class's draw mean m_g and spread from the prior's own draws (a fixed seed: the same map
every time) and maps z' = m_g + s_c (z - m_g), s_c = sqrt(tr S_data / tr S_draws): the shape the diffusion model
learned is kept, only its size changes.

Measured (bench/bench_priors.py --match, README): on real MNIST this lifts recall past the mixture's at better
Fréchet score, precision and accuracy. Mapping the whole covariance instead (S_draws^-1/2 S_data^1/2) gave more
recall but cost conditional accuracy (the draws pushed linearly towards the class boundaries), so it is not offered.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

DRAWS_PER_CLASS = 1000
SEED = 20_190_513    # the draws that estimate the map: fixed, so a prior samples the same way in every session


def class_spreads(z: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The spread (trace of the covariance) of latents z (N, d) per class, (C,) (one class when num_classes is 0);
    a class with fewer than two latents gets the whole set's."""
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels) if num_classes else np.zeros(len(z), dtype=int)
    spreads = [float(z[labels == c].var(0, ddof=1).sum()) if (labels == c).sum() >= 2 else float(z.var(0, ddof=1).sum())
               for c in range(max(int(num_classes), 1))]
    return np.asarray(spreads, dtype=np.float32)


class SpreadMatch:
    """The per-class scales of one sampling configuration: `apply(z, labels)` -> z with the data's spread."""

    def __init__(self, draw: Callable[[torch.Tensor, torch.Generator], torch.Tensor], spreads: np.ndarray, *,
                 draws_per_class: int = DRAWS_PER_CLASS) -> None:
        """`draw(labels, generator)` -> z (B, d) from the prior before matching; `spreads` the data's, per class
        (class_spreads)."""
        generator = torch.Generator().manual_seed(SEED)
        self.centres: list[torch.Tensor] = []
        self.scales: list[float] = []
        for c, spread in enumerate(spreads):
            drawn = draw(torch.full((draws_per_class,), c, dtype=torch.long), generator).double()
            own = float(drawn.var(0).sum())
            self.centres.append(drawn.mean(0).float())
            self.scales.append(float(np.sqrt(spread / own)) if own > 0 else 1.0)

    def apply(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = z.clone()
        labels = labels if len(self.scales) > 1 else torch.zeros_like(labels)
        for c, (centre, scale) in enumerate(zip(self.centres, self.scales, strict=True)):
            rows = labels == c
            if rows.any():
                out[rows] = centre + scale * (z[rows] - centre)
        return out
