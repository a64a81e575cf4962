"""core.latent.code_map: how a split uses a codebook, checked on code grids small enough to count by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.latent.code_map import CodebookUse, codebook_use


class _GridCodes:
    """A stand-in VQ-VAE whose code grid is the image's pixels (2x2 images, values 0..3 -> codes 0..3 of 5)."""

    kind, codebook_size, grid = "vqvae", 5, 2
    codebook = torch.arange(10, dtype=torch.float32).reshape(5, 2)

    def encode_codes(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0] * 255).round().long()


def test_codebook_use_counts_cells_per_code_and_class():
    images = torch.tensor([[[0, 1], [1, 1]], [[2, 2], [2, 0]], [[1, 0], [3, 3]]], dtype=torch.uint8)[:, None]
    labels = torch.tensor([0, 1, 1])
    seen = []
    use = codebook_use(_GridCodes(), images, labels, 2, split="test", batch_size=2,
                       progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]
    # code: cells of class 0, of class 1 (image 0 is class 0; images 1 and 2 class 1)
    assert use.by_class.tolist() == [[1, 2], [3, 1], [0, 3], [0, 2], [0, 0]]
    assert use.cells.tolist() == [3, 4, 3, 2, 0] and use.dead.tolist() == [4]
    assert use.top_class().tolist() == [1, 0, 1, 1, -1]
    np.testing.assert_allclose(use.class_share(), [2 / 3, 3 / 4, 1, 1, 0])
    # code 1: 3 cells in image 0, 1 in image 2; code 4 in none
    assert use.images_using(1).tolist() == [0, 2] and use.images_using(4).tolist() == []
    assert use.images_using(0, 2).tolist() == [0, 1]       # one cell in each image: ties go by index
    assert use.images_using(2).tolist() == [1]
    p = np.array([3, 4, 3, 2]) / 12
    assert use.perplexity() == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    near, dist = use.nearest_codes(2, 2)
    assert near.tolist() == [1, 3] and dist == pytest.approx([np.sqrt(8)] * 2)
    np.testing.assert_array_equal(use.vectors, _GridCodes.codebook.numpy())


def test_codebook_use_stops_when_asked():
    images = torch.zeros((4, 1, 2, 2), dtype=torch.uint8)
    assert codebook_use(_GridCodes(), images, torch.zeros(4), 1, split="test", should_stop=lambda: True) is None
    assert isinstance(codebook_use(_GridCodes(), images, torch.zeros(4), 1, split="test"), CodebookUse)
