"""Classical restorers: scikit-image baselines, one or more per corruption, for the Denoise / Enhance comparison.

Non-blind, as such baselines are usually run: the known corruption parameter (noise sigma, blur kernel, darkening)
is given to the method that needs one. Image by image on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from core.errors import UserError
from core.restoration.corruptions import check_name, downsample_factor, keep_known

# The classical methods per corruption; the first is the default ("classical" in the panel's row).
CLASSICAL: dict[str, tuple[str, ...]] = {
    "gaussian": ("tv", "nl-means", "wavelet"),   # TV first: best of the three on validation digits at sigma 0.3
    "salt-pepper": ("median",),
    "blur": ("richardson-lucy", "unsharp"),
    "low-light": ("gamma", "clahe"),
    "mask-box": ("biharmonic",),
    "mask-strokes": ("biharmonic",),
    "downsample-x2": ("bicubic",),
    "downsample-x4": ("bicubic",),
}

def restore_classical(x_corrupted: torch.Tensor, name: str, strength: float, mask: torch.Tensor | None = None,
                      method: str | None = None) -> torch.Tensor:
    """A scikit-image baseline (CLASSICAL[name], the first by default), image by image on the CPU. The known
    corruption parameter is used where the method needs one (noise sigma, blur kernel, gamma), as a non-blind
    classical method would be given it."""
    check_name(name)
    method = method or CLASSICAL[name][0]
    if method not in CLASSICAL[name]:
        raise UserError(f"no classical method {method!r} for {name}; choose one of: {', '.join(CLASSICAL[name])}")
    x = x_corrupted.detach().float().cpu().numpy()
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        img = np.moveaxis(x[i], 0, -1).astype(np.float64)          # (H, W, C)
        m = mask[i, 0].cpu().numpy() > 0.5 if mask is not None else None
        res = _classical_one(img, name, float(strength), m, method)
        out[i] = np.moveaxis(np.clip(res.reshape(img.shape), 0, 1), -1, 0)
    return keep_known(torch.from_numpy(out), x_corrupted.cpu(), mask.cpu() if mask is not None else None)


def _classical_one(img: np.ndarray, name: str, s: float, mask: np.ndarray | None, method: str) -> np.ndarray:
    from skimage import exposure, filters, restoration, transform

    gray = img.shape[2] == 1
    ch = None if gray else -1
    im = img[..., 0] if gray else img
    if method == "nl-means":
        sigma = max(s, 1e-3)
        res = restoration.denoise_nl_means(im, h=0.6 * sigma, sigma=sigma, patch_size=3, patch_distance=3,
                                           fast_mode=True, channel_axis=ch)
    elif method == "tv":
        res = restoration.denoise_tv_chambolle(im, weight=max(s, 1e-3) * 0.5, channel_axis=ch)
    elif method == "wavelet":
        res = restoration.denoise_wavelet(im, sigma=max(s, 1e-3), mode="soft", method="BayesShrink",
                                          rescale_sigma=True, channel_axis=ch)
    elif method == "median":
        res = filters.median(im, np.ones((3, 3) if gray else (3, 3, 1), bool))
    elif method == "richardson-lucy":
        if s <= 0:
            return img
        r = min(max(1, int(np.ceil(3 * s))), min(img.shape[:2]) - 1)   # the corruption's own kernel radius
        g = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * s * s))
        psf = np.outer(g, g)
        psf /= psf.sum()
        # Reflect-padded like the blur itself: scikit-image convolves with zeros beyond the border, which on a small
        # image floods the edges with ringing (40 digits: 15.0 dB unpadded, below the blurred input's 18.6).
        pad = [(r, r), (r, r)]
        chans = [restoration.richardson_lucy(np.pad(img[..., c], pad, mode="reflect"), psf, num_iter=15)[r:-r, r:-r]
                 for c in range(img.shape[2])]
        res = np.stack(chans, -1)
    elif method == "unsharp":
        res = filters.unsharp_mask(im, radius=max(s, 0.5), amount=1.5, channel_axis=ch)
    elif method == "gamma":
        lo, hi = np.percentile(im, (0.5, 99.5))
        res = exposure.adjust_gamma(exposure.rescale_intensity(im, in_range=(lo, max(hi, lo + 1e-6)),
                                                               out_range=(0.0, 1.0)), 1 / (1 + s))
    elif method == "clahe":
        res = exposure.equalize_adapthist(im, clip_limit=0.03, kernel_size=max(2, im.shape[0] // 4))
    elif method == "biharmonic":
        res = restoration.inpaint_biharmonic(im, mask, channel_axis=ch) if mask is not None and mask.any() else im
    elif method == "bicubic":
        f = downsample_factor(name)
        low = transform.resize(im, (im.shape[0] // f, im.shape[1] // f) + im.shape[2:], order=1, anti_aliasing=True)
        res = transform.resize(low, im.shape, order=3)
    else:  # pragma: no cover - guarded by CLASSICAL
        raise UserError(f"unknown classical method {method!r}")
    return res[..., None] if gray else res
