"""Map position -> latent: what the latent map decodes where the user clicks or drags."""

from __future__ import annotations

import numpy as np

SPACING_SAMPLE = 5000


class PositionMapper:
    """Maps 2-D map positions to latents by inverse-distance weighting over the k nearest embedded points.

    At a data point's own position the weight of that point dominates completely (exact stored latent); between
    points the result blends their latents. umap's inverse_transform would be the principled tool, but it takes
    seconds per point; this takes microseconds.
    """

    def __init__(self, xy: np.ndarray, mu: np.ndarray, labels: np.ndarray | None = None, *, k: int = 8,
                 power: float = 2.0, columns: slice | None = None) -> None:
        from scipy.spatial import cKDTree

        self.xy = np.asarray(xy, dtype=np.float64)
        self.mu = np.asarray(mu, dtype=np.float32)
        if len(self.xy) != len(self.mu) or self.xy.ndim != 2 or self.xy.shape[1] != 2:
            raise ValueError(f"xy must be (N, 2) matching mu (N, D); got {self.xy.shape} and {self.mu.shape}")
        self.labels = None if labels is None else np.asarray(labels)
        # A map of one latent layer (columns of the flat latent) blends only that layer; the other layers keep the
        # values of the nearest point, so a decode changes only what the map shows.
        self.columns = columns
        self.k = max(1, min(k, len(self.xy)))
        self.power = power
        self.tree = cKDTree(self.xy)
        # The typical spacing between neighbouring points: "far from data" is measured in these units. The median
        # over 5,000 points (a fixed sample) is as good as over all, and 70,000 queries cost ~0.2 s on the GUI thread.
        if len(self.xy) > 1:
            probe = self.xy
            if len(probe) > SPACING_SAMPLE:
                probe = probe[np.random.default_rng(0).choice(len(probe), SPACING_SAMPLE, replace=False)]
            d, _ = self.tree.query(probe, k=2)
            self.spacing = float(np.median(d[:, 1])) or 1e-12
        else:
            self.spacing = 1.0
        span = np.ptp(self.xy, axis=0).max() if len(self.xy) > 1 else 1.0
        self._eps = 1e-9 * max(float(span), 1e-12)

    def _neighbours(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        d, i = self.tree.query(pts, k=self.k)
        return d.reshape(len(pts), self.k), i.reshape(len(pts), self.k)

    def _weights(self, d: np.ndarray) -> np.ndarray:
        exact = d[:, :1] <= self._eps
        w = 1.0 / np.maximum(d, self._eps) ** self.power
        # at a data point's own position use that point alone (and its exact duplicates)
        w = np.where(exact, (d <= self._eps).astype(np.float64), w)
        return w / w.sum(axis=1, keepdims=True)

    def latent_at(self, points: np.ndarray) -> np.ndarray:
        """(M, 2) map positions -> (M, D) float32 latents."""
        d, i = self._neighbours(points)
        w = self._weights(d)
        if self.columns is None:
            return np.einsum("mk,mkd->md", w, self.mu[i].astype(np.float64)).astype(np.float32)
        z = self.mu[i[:, 0]].copy()
        z[:, self.columns] = np.einsum("mk,mkd->md", w, self.mu[i][:, :, self.columns].astype(np.float64))
        return z

    def label_at(self, points: np.ndarray) -> np.ndarray:
        """(M, 2) -> (M,) the weighted majority class of the neighbours (which class to decode a position as)."""
        if self.labels is None:
            raise ValueError("PositionMapper was built without labels")
        d, i = self._neighbours(points)
        w = self._weights(d)
        classes = np.unique(self.labels)
        votes = np.stack([(w * (self.labels[i] == c)).sum(axis=1) for c in classes], axis=1)
        return classes[votes.argmax(axis=1)]

    def distance_to_data(self, points: np.ndarray) -> np.ndarray:
        """(M, 2) -> (M,) distance to the nearest embedded point, in units of the typical neighbour spacing
        (about 1 inside the data; several times that means the decode is an extrapolation)."""
        d, _ = self.tree.query(np.atleast_2d(np.asarray(points, dtype=np.float64)), k=1)
        return (np.asarray(d, dtype=np.float64).reshape(-1) / self.spacing).astype(np.float32)

    def distance_image(self, x_range: tuple[float, float], y_range: tuple[float, float],
                       size: int = 128) -> np.ndarray:
        """distance_to_data on a size x size grid over the given ranges -> (size, size) float32, row = y."""
        xs = np.linspace(*x_range, size)
        ys = np.linspace(*y_range, size)
        gx, gy = np.meshgrid(xs, ys)
        return self.distance_to_data(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(size, size)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Indices of the (N, 2) points inside a closed (M, 2) polygon (a lasso or a rectangle in map coordinates).

    scikit-image's points_in_poly (compiled) on the points inside the polygon's bounding box only: a lasso of a
    small region of a 100,000-point map tests a few thousand points, not all of them."""
    from skimage.measure import points_in_poly

    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    pts = np.asarray(xy)
    if len(poly) < 3 or len(pts) == 0:
        return np.zeros(0, np.int64)
    lo, hi = poly.min(0), poly.max(0)
    box = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0]) & (pts[:, 1] >= lo[1]) & (pts[:, 1] <= hi[1]))
    if len(box) == 0:
        return np.zeros(0, np.int64)
    inside = points_in_poly(pts[box].astype(np.float64), poly)
    return box[inside].astype(np.int64)
