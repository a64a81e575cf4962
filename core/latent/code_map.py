"""What a VQ-VAE's latent map shows: its codebook, one point per code vector, with how a split uses each code.

A VQ-VAE has no continuous latent per image to project: an image is a (grid, grid) grid of indices into a codebook.
Its map is the codebook's own space: the code vectors are projected like latents (PCA / UMAP / t-SNE), and each code
carries what the data does with it: the cells of the split that use it, the images it appears in, the cells per class
(a code the class "3" uses most sits among the 3's strokes), and the codes no cell uses (dead). `codebook_use` counts
these on a worker (one encode of the split; it keeps each image's code grid, so "which images use code k" is a lookup).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.models.protocol import DiscreteCodeModel


@dataclass(frozen=True)
class CodebookUse:
    """A VQ-VAE's codebook and how the images of a split use it."""

    vectors: np.ndarray     # float32 (K, code_dim): the code vectors
    codes: np.ndarray       # int64 (N, grid * grid): each image's code grid, flattened
    labels: np.ndarray      # int64 (N,): each image's class
    by_class: np.ndarray    # int64 (K, C): cells of each class's images that use each code
    split: str              # what was counted ("test", "all splits" ...)

    @property
    def cells(self) -> np.ndarray:
        """(K,) cells of the split that use each code."""
        return self.by_class.sum(axis=1)

    @property
    def dead(self) -> np.ndarray:
        """Indices of the codes no cell uses."""
        return np.flatnonzero(self.cells == 0)

    def top_class(self) -> np.ndarray:
        """(K,) the class whose images use each code most (-1 for a dead code)."""
        top = self.by_class.argmax(axis=1)
        return np.where(self.cells > 0, top, -1)

    def class_share(self) -> np.ndarray:
        """(K,) the share of a code's cells that its top class holds (0 for a dead code)."""
        cells = self.cells
        return np.where(cells > 0, self.by_class.max(axis=1) / np.maximum(cells, 1), 0.0)

    def images_with(self, code: int) -> np.ndarray:
        """(N,) how many cells of each image hold `code`."""
        return (self.codes == int(code)).sum(axis=1)

    def images_using(self, code: int, n: int = 8) -> np.ndarray:
        """The (at most n) images with the most cells of `code`, most first (ties: lower index first); none when
        no image uses it."""
        per_image = self.images_with(code)
        used = np.flatnonzero(per_image > 0)
        order = np.lexsort((used, -per_image[used]))
        return used[order[:n]]

    def perplexity(self) -> float:
        """exp(entropy) of the codes' use: the number of equally used codes that would spread the cells as much."""
        cells = self.cells
        p = cells[cells > 0] / max(1, int(cells.sum()))
        return float(np.exp(-(p * np.log(p)).sum())) if len(p) else 0.0

    def nearest_codes(self, code: int, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """The n codes whose vectors are nearest `code`'s (itself excluded) and their Euclidean distances."""
        d = np.linalg.norm(self.vectors - self.vectors[int(code)][None], axis=1)
        d[int(code)] = np.inf
        order = np.argsort(d, kind="stable")[:n]
        return order, d[order]


def codebook_use(model: DiscreteCodeModel, images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                 split: str, batch_size: int = 256, progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> CodebookUse | None:
    """Encode `images` (uint8 (N, C, H, W)) to code grids and count each code's use per class; None when stopped."""
    from core.images import as_float

    k = int(model.codebook_size)
    n = len(images)
    grids = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                return None
            codes = model.encode_codes(as_float(images[start:start + batch_size]))
            grids.append(codes.reshape(len(codes), -1).cpu())
            if progress is not None:
                progress(min(start + batch_size, n), n)
        vectors = model.codebook.detach().float().cpu().numpy().copy()
    codes = torch.cat(grids).numpy().astype(np.int64) if grids else np.zeros((0, int(model.grid) ** 2), np.int64)
    y = labels.cpu().numpy().astype(np.int64)
    classes = max(int(num_classes), int(y.max()) + 1 if len(y) else 1)
    cells_class = np.repeat(y, codes.shape[1])
    by_class = np.bincount(codes.reshape(-1) * classes + cells_class, minlength=k * classes).reshape(k, classes)
    return CodebookUse(vectors, codes, y, by_class.astype(np.int64), split)
