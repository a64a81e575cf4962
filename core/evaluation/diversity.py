"""Precision and recall of generated images against real ones (Kynkäänniemi et al. 2019, "Improved precision and
recall metric for assessing generative models"), in the judge classifier's feature space.

Each set's manifold is estimated as the union of balls around its points, each ball reaching its point's k-th nearest
neighbour in the same set. Precision is the share of generated points inside the real manifold (are the samples
realistic?); recall the share of real points inside the generated manifold (do the samples cover the variety of the
data, or has the generator collapsed onto a few modes?). The Fréchet score mixes the two; these separate them, which
is what the survey's "limited diversity" of VAEs asks for.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

DEFAULT_K = 3   # the paper's choice: k = 3 balances the estimate's bias for sets of a few thousand points


def manifold_radii(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Distance of each point to its k-th nearest neighbour among the *other* points of the set, (N,)."""
    if len(features) <= k:
        raise ValueError(f"a k-NN manifold with k = {k} needs more than {k} points, got {len(features)}")
    # kneighbors() without a query leaves each point out of its own neighbours.
    distances, _ = NearestNeighbors(n_neighbors=k).fit(features).kneighbors()
    return distances[:, -1]


def inside_share(queries: np.ndarray, points: np.ndarray, radii: np.ndarray) -> float:
    """Share of `queries` that lie within the ball (radius `radii[i]`) of at least one of `points`."""
    inside = np.concatenate([(chunk <= radii[None, :]).any(axis=1)
                             for chunk in pairwise_distances_chunked(queries, points)])
    return float(inside.mean())


def precision_recall(real_features: np.ndarray, fake_features: np.ndarray, *, k: int = DEFAULT_K,
                     seed: int = 0) -> tuple[float, float]:
    """(precision, recall) of the fake feature set (N, F) against the real one (M, F), each in [0, 1].

    The k-NN radii shrink as a set is sampled more densely, so the larger set is first subsampled (seeded) to the size
    of the smaller: a set compared with itself split in two halves then scores about the same both ways.
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sets must be (N, F) with the same F, got {real.shape} and {fake.shape}")
    n = min(len(real), len(fake))
    rng = np.random.default_rng(seed)
    if len(real) > n:
        real = real[np.sort(rng.choice(len(real), n, replace=False))]
    if len(fake) > n:
        fake = fake[np.sort(rng.choice(len(fake), n, replace=False))]
    precision = inside_share(fake, real, manifold_radii(real, k))
    recall = inside_share(real, fake, manifold_radii(fake, k))
    return precision, recall
