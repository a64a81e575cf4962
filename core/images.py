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
    """uint8 (N, H, W, C) -> one uint8 (rows * H, columns * W, C) image, row-major (the layout of torchvision's
    `make_grid`); `padding` pixels of `pad_value` between cells (and around them with `outer_border`); each pixel
    `scale` times.

    Written here in numpy rather than calling `make_grid`: importing torchvision only for it cost the application
    164 MiB of resident memory and ~1.5 s at launch (measured with the CUDA wheels, issue 23), and make_grid needed
    three corrections anyway (it makes one channel three, returns a single image unpadded, has no inner-only border)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"expected uint8 images (N, H, W, C), N > 0, got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    cols = min(max(1, int(columns)), n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c), pad_value, np.uint8)
    for i in range(n):
        y, x = divmod(i, cols)
        top, left = padding + y * (h + padding), padding + x * (w + padding)
        grid[top:top + h, left:left + w] = images[i]
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
