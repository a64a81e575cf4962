"""Images as they cross the project's boundaries: uint8 <-> [0, 1] floats, and grids of images.

The models take float32 (B, C, H, W) in [0, 1]; datasets keep uint8 (B, C, H, W); the GUI and PNG writers take
uint8 (B, H, W, C) numpy. Each conversion is written once, here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_float(images_uint8: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1] (what the models take)."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"as_float expects uint8 images, got {images_uint8.dtype}")
    return images_uint8.to(torch.float32).div_(255.0)


def to_uint8(images: Tensor | np.ndarray) -> np.ndarray:
    """[0, 1] floats, channels first ((B, C, H, W) or (C, H, W); a tensor on any device, or numpy) -> a uint8 numpy
    copy, channels last ((B, H, W, C) or (H, W, C)), the form the GUI and PNG writers take."""
    x = torch.as_tensor(images).detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.movedim(-3, -1).cpu().numpy().copy()


def image_grid(images: np.ndarray, columns: int, *, padding: int = 0, pad_value: int = 0,
               outer_border: bool = True, scale: int = 1) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows * H, columns * W, C) image, row-major (torchvision's `make_grid`);
    `padding` pixels of `pad_value` between cells (and around them with `outer_border`); each pixel `scale` times."""
    from torchvision.utils import make_grid

    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, C), got {images.dtype} {images.shape}")
    c = images.shape[-1]
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    grid = make_grid(t, nrow=max(1, int(columns)), padding=padding, pad_value=pad_value)
    grid = grid[:c].permute(1, 2, 0).numpy()          # make_grid makes one-channel images three-channel
    if padding and len(images) == 1:                  # make_grid returns a single image as it is, unpadded
        grid = np.pad(grid, ((padding, padding), (padding, padding), (0, 0)), constant_values=pad_value)
    if padding and not outer_border:
        grid = grid[padding:-padding, padding:-padding]
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return np.ascontiguousarray(grid)


def save_png(image: np.ndarray, path: str, *, scale: int = 1) -> None:
    """Write one uint8 (H, W, C) image (C = 1 or 3) as a PNG, each pixel `scale` times (nearest neighbour)."""
    from PIL import Image

    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
