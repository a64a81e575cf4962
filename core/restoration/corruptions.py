"""Image corruptions with a strength parameter, and the forward operators restorers use to explain observed pixels.

Every corruption takes [0, 1] images (B, C, H, W) and returns `(corrupted, mask)`: `corrupted` has the same shape and
stays in [0, 1]; `mask` is None, or a float tensor (B, 1, H, W) with 1 where a pixel was lost (to be inpainted) and 0
where it is known (the scikit-image `inpaint_biharmonic` convention). Meaning of `strength` per corruption:

- gaussian: standard deviation of additive noise, in image units (0.3 = 30% of the range), before clipping to [0, 1];
- salt-pepper: fraction of pixels set to 0 or 1 (half each);
- blur: standard deviation of the Gaussian blur kernel, in pixels;
- low-light: s in [0, 1]: y = (1 - s) * x ** (1 + s)  (darker and lower contrast as s grows);
- mask-box: area fraction of one random box (missing pixels are shown mid-grey);
- mask-strokes: fraction of pixels covered by random brush strokes (at least this much, a stroke may overshoot);
- downsample-x2 / downsample-x4: the factor is in the name and strength is ignored; the image is area-averaged by
  the factor and shown nearest-neighbour upsampled, so the shape is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

CORRUPTIONS = ("gaussian", "salt-pepper", "blur", "low-light", "mask-box", "mask-strokes", "downsample-x2",
               "downsample-x4")
# (default, low, high, unit) for the CLI and the panel's strength control.
STRENGTHS: dict[str, tuple[float, float, float, str]] = {
    "gaussian": (0.3, 0.0, 1.0, "noise sigma"),
    "salt-pepper": (0.2, 0.0, 1.0, "pixel fraction"),
    "blur": (1.5, 0.0, 5.0, "sigma (px)"),
    "low-light": (0.6, 0.0, 0.95, "darkening"),
    "mask-box": (0.25, 0.0, 0.9, "area fraction"),
    "mask-strokes": (0.2, 0.0, 0.9, "area fraction"),
    "downsample-x2": (2.0, 2.0, 2.0, "factor (fixed)"),
    "downsample-x4": (4.0, 4.0, 4.0, "factor (fixed)"),
}
MASK_FILL = 0.5   # value shown where pixels are missing


def check_name(name: str) -> None:
    from core.errors import UserError

    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")


def check_strength(name: str, strength: float) -> None:
    """UserError unless `strength` is in the corruption's range (STRENGTHS); the fixed downsampling factors take any
    strength (it is ignored)."""
    from core.errors import UserError

    check_name(name)
    _, low, high, unit = STRENGTHS[name]
    if low != high and not low <= float(strength) <= high:
        raise UserError(f"{name} strength ({unit}) must be from {low:g} to {high:g}, not {strength:g}")


def corrupt(x: torch.Tensor, name: str, strength: float, *,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Corrupt [0, 1] images (B, C, H, W); see the module docstring for what strength means per corruption."""
    check_strength(name, strength)
    x = x.float()
    s = float(strength)
    if name == "gaussian":
        return (x + s * _randn(x.shape, generator).to(x.device)).clamp(0, 1), None
    if name == "salt-pepper":
        u = _rand((x.shape[0], 1, *x.shape[2:]), generator).to(x.device)
        salt = (u < s / 2).expand_as(x)
        pepper = ((u >= s / 2) & (u < s)).expand_as(x)
        return x.masked_fill(pepper, 0.0).masked_fill(salt, 1.0), None
    if name == "blur":
        return blur(x, s), None
    if name == "low-light":
        return low_light(x, s), None
    if name in ("mask-box", "mask-strokes"):
        maker = _box_mask if name == "mask-box" else _stroke_mask
        mask = torch.stack([maker(x.shape[2], x.shape[3], s, generator) for _ in range(x.shape[0])])[:, None]
        mask = mask.to(x.device)
        return x * (1 - mask) + MASK_FILL * mask, mask
    factor = downsample_factor(name)
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest"), None


def downsample_factor(name: str) -> int:
    return 4 if name == "downsample-x4" else 2


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with reflect padding (differentiable: the VAE refinement uses it as its forward operator)."""
    if sigma <= 0:
        return x
    from torchvision.transforms.functional import gaussian_blur

    radius = min(int(math.ceil(3 * sigma)), (min(x.shape[-2:]) - 1))
    return gaussian_blur(x, [2 * radius + 1] * 2, [sigma, sigma])


def low_light(x: torch.Tensor, s: float) -> torch.Tensor:
    return (1 - s) * x.clamp(0, 1) ** (1 + s)


def observation(name: str, x_corrupted: torch.Tensor) -> torch.Tensor:
    """What forward_operator(name, ...) of the clean image equals: the corrupted image itself, except for the
    downsampling corruptions, whose corrupted image is the small image enlarged (the small one is returned)."""
    if name.startswith("downsample"):
        return F.avg_pool2d(x_corrupted, downsample_factor(name))   # exact: nearest enlargement, then the mean
    return x_corrupted


def keep_known(out: torch.Tensor, x_corrupted: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """A restoration clamped to [0, 1], with the known pixels (mask 0) of the corrupted image put back exactly."""
    if mask is None:
        return out.clamp(0, 1)
    m = mask.to(out.device).expand_as(out) > 0.5
    return torch.where(m, out.clamp(0, 1), x_corrupted.to(out.device).float())


def forward_operator(name: str, strength: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A(x): what the corruption does to a clean image, without its randomness (noise and masks are handled by the
    restorer's loss). Used to explain observed pixels: compare A(restored) with `observation(name, corrupted)`."""
    check_name(name)
    if name == "blur":
        return lambda x: blur(x, float(strength))
    if name == "low-light":
        return lambda x: low_light(x, float(strength))
    if name.startswith("downsample"):
        factor = downsample_factor(name)
        return lambda x: F.avg_pool2d(x, factor)
    return lambda x: x


def _box_mask(h: int, w: int, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    mask = torch.zeros(h, w)
    area = fraction * h * w
    if area < 0.5:
        return mask
    # A roughly square box with a random aspect ratio in [0.5, 2]: sides chosen so their product hits the area.
    aspect = 2 ** (2 * float(_rand((1,), generator)) - 1)
    bh = int(round(min(h, max(1.0, math.sqrt(area * aspect)))))
    bw = int(round(min(w, max(1.0, area / bh))))
    top = int(_rand((1,), generator) * (h - bh + 1))
    left = int(_rand((1,), generator) * (w - bw + 1))
    mask[top: top + bh, left: left + bw] = 1
    return mask


def _stroke_mask(h: int, w: int, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """Random-walk brush strokes (width ~ image size / 8) until at least `fraction` of the pixels are covered."""
    mask = torch.zeros(h, w)
    if fraction <= 0:
        return mask
    radius = max(0.5, min(h, w) / 16)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for _ in range(200):
        if mask.mean() >= fraction:
            break
        y, x = float(_rand((1,), generator)) * h, float(_rand((1,), generator)) * w
        angle = float(_rand((1,), generator)) * 2 * math.pi
        for _ in range(max(3, h // 2)):           # one stroke: a wobbly line of brush dabs
            mask[(yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2] = 1
            if mask.mean() >= fraction:
                break
            angle += float(_rand((1,), generator) - 0.5)
            y = min(max(y + math.sin(angle), 0), h - 1)
            x = min(max(x + math.cos(angle), 0), w - 1)
    return mask


def _randn(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")


def _rand(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device if generator else "cpu")
