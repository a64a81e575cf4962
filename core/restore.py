"""Restorers (VAE, VAE latent refinement, diffusion, classical scikit-image baselines), their metrics, and the batch
evaluation behind `vae-explorer restore-eval` and the Denoise / Enhance panel.

All restorers take corrupted [0, 1] images (B, C, H, W) and return restored [0, 1] images of the same shape; for
mask corruptions (mask 1 = missing) every restorer returns the known pixels unchanged. Labels are never given to a
restorer by default: a real corrupted image comes without one, so the VAE tries every label and keeps the one that
explains the observed pixels best, and the diffusion model runs unconditionally ("no label").
The corruptions live in `core.corruptions` and the classical restorers in `core.classical` (both re-exported here).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.classical import CLASSICAL, restore_classical  # noqa: F401 - re-exported
from core.corruptions import (  # noqa: F401 - re-exported: the public API is core.restore
    CORRUPTIONS,
    MASK_FILL,
    STRENGTHS,
    check_name,
    corrupt,
    downsample_factor,
    forward_operator,
    keep_known,
    observation,
)
from core.errors import UserError

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None

ROW_FIELDS = ("corruption", "strength", "restorer", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std",
              "seconds_per_image")


def _model(m: Any) -> Any:
    """Accept a LoadedModel or the bare nn.Module."""
    return m.model if hasattr(m, "model") and hasattr(m, "config") else m


# ---------------------------------------------------------------------------------------------------------- VAE
def _labels_to_try(vae: Any, b: int, device: Any) -> list[torch.Tensor | None]:
    k = int(getattr(vae, "num_classes", 0) or 0)
    return [torch.full((b,), c, dtype=torch.long, device=device) for c in range(k)] if k else [None]


def _observed_error(pred: torch.Tensor, x_c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-image mean squared error between pred and the corrupted image, over the known pixels only."""
    d = (pred - x_c).pow(2)
    if mask is None:
        return d.flatten(1).mean(1)
    known = (1 - mask).expand_as(d)
    return (d * known).flatten(1).sum(1) / known.flatten(1).sum(1).clamp_min(1)


@torch.no_grad()
def restore_vae(vae: Any, x_corrupted: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """Encode the corrupted image and decode the posterior mean; without labels, every label is tried and the one
    whose reconstruction best matches the known pixels is kept."""
    vae = _model(vae)
    device = next(vae.parameters()).device
    x = x_corrupted.to(device).float()
    tries = [labels.to(device)] if labels is not None else _labels_to_try(vae, x.shape[0], device)
    best, best_err = None, None
    for y in tries:
        mu, _ = vae.encode(x, y)
        out = vae.decode(mu, y)
        err = _observed_error(out, x, mask.to(device) if mask is not None else None)
        if best is None:
            best, best_err = out, err
        else:
            better = err < best_err
            best = torch.where(better.view(-1, 1, 1, 1), out, best)
            best_err = torch.minimum(err, best_err)
    return keep_known(best, x, mask).cpu()


def restore_vae_refined(vae: Any, x_corrupted: torch.Tensor, name: str, strength: float,
                        mask: torch.Tensor | None = None, *, labels: torch.Tensor | None = None, steps: int = 100,
                        lr: float = 0.05, progress: Progress = None,
                        should_stop: ShouldStop = None) -> torch.Tensor | None:
    """MAP latent refinement: optimise z (one z per candidate label) with Adam to minimise
    |A(decode(z, y)) - observation|^2 / (2 sigma^2) + |z|^2 / 2 over the known pixels, A being the corruption's
    forward operator (blur, darkening, downsampling; identity otherwise) and sigma the noise level (the Gaussian
    noise strength; 0.05 for the noise-free corruptions). Salt-and-pepper uses an L1 data term (outliers). Starts
    from the encoder's mean; without labels, all labels are refined at once and the lowest final loss wins.
    Returns None when stopped."""
    check_name(name)
    vae = _model(vae)
    device = next(vae.parameters()).device
    x = x_corrupted.to(device).float()
    b = x.shape[0]
    m = mask.to(device).float() if mask is not None else None
    op = forward_operator(name, strength)
    robust = name == "salt-pepper"
    sigma = max(float(strength), 0.05) if name == "gaussian" else (0.1 if robust else 0.05)
    tries = [labels.to(device)] if labels is not None else _labels_to_try(vae, b, device)
    k = len(tries)
    y = None if tries[0] is None else torch.cat(tries)            # (k*b,): label c for images 0..b-1, then c+1 ...
    xs = x.repeat(k, 1, 1, 1)
    ms = m.repeat(k, 1, 1, 1) if m is not None else None
    target = observation(name, xs)                                # A(clean) = target: what A(decoded) must match
    with torch.no_grad():
        z0, _ = vae.encode(xs, y)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for i in range(steps):
        if should_stop is not None and should_stop():
            return None
        with torch.enable_grad():
            loss = _refine_loss(vae, z, y, target, op, ms, robust, sigma)
            # Gradients for z only: the (shared, possibly in use elsewhere) model's .grad stays untouched.
            (z.grad,) = torch.autograd.grad(loss.sum(), [z])
        opt.step()
        if progress is not None:
            progress(i + 1, steps)
    with torch.no_grad():
        loss = _refine_loss(vae, z, y, target, op, ms, robust, sigma).view(k, b)
        out = vae.decode(z, y).view(k, b, *x.shape[1:])
        best = loss.argmin(0)
        out = out[best, torch.arange(b, device=device)]
    return keep_known(out, x, m).cpu()


def _refine_loss(vae: Any, z: torch.Tensor, y: torch.Tensor | None, target: torch.Tensor, op: Callable,
                 mask: torch.Tensor | None, robust: bool, sigma: float) -> torch.Tensor:
    """Per-latent negative log posterior (up to constants), summed over the known pixels."""
    pred = vae.decode(z, y)
    d = op(pred) - target
    if mask is not None:
        d = d * (1 - mask).expand_as(d)      # masks come with the identity operator: same shape
    data = (d.abs() / sigma) if robust else d.pow(2) / (2 * sigma ** 2)
    return data.flatten(1).sum(1) + 0.5 * z.pow(2).sum(1)


# ---------------------------------------------------------------------------------------------------- diffusion
def diffusion_strength(model: Any, name: str, strength: float) -> float:
    """The SDEdit strength (fraction of the chain) that suits a corruption: for Gaussian noise, the timestep whose
    noise level matches the corruption's sigma (so the added noise drowns the observed noise, and no more);
    masks regenerate from pure noise (RePaint keeps the known pixels)."""
    model = _model(model)
    if name in ("mask-box", "mask-strokes"):
        return 1.0
    if name == "gaussian":
        target = 2 * float(strength)        # sigma in [-1, 1] units
        ab = model.alphas_cumprod
        level = ((1 - ab) / ab).sqrt()
        t = int((level < target).sum())     # the first timestep at least as noisy as the observation
        return min(1.0, t / (model.cfg.timesteps - 1))
    return {"salt-pepper": 0.5, "blur": 0.4, "low-light": 0.5, "downsample-x2": 0.35, "downsample-x4": 0.55}[name]


CONSISTENCY_ITERS = 10    # gradient steps on the data term per diffusion step


def data_consistency(name: str, strength: float, x_corrupted: torch.Tensor, *,
                     iters: int = CONSISTENCY_ITERS) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For the corruptions with a known deterministic forward operator A (blur, low light, downsampling), a function
    that moves a clean-image estimate x0 (in [-1, 1]) towards explaining the observation y: `iters` gradient steps
    on |A(x) - y|^2 / 2 starting at x0 (the data step of plug-and-play diffusion restoration, as in DiffPIR). None
    for the corruptions whose observation is the image itself (noise, masks: SDEdit and RePaint handle those)."""
    if name not in ("blur", "low-light") and not name.startswith("downsample"):
        return None
    op = forward_operator(name, strength)
    y = observation(name, x_corrupted.float())
    # Step sizes near 1 / |A|^2: the mean over f x f pixels has |A|^2 = 1/f^2 (one step then projects exactly);
    # a blur's kernel sums to 1; the darkening's slope is below 1.
    step = float(downsample_factor(name) ** 2) if name.startswith("downsample") else (1.0 if name == "blur" else 2.0)

    def correct(x0: torch.Tensor) -> torch.Tensor:
        target = y.to(x0.device)
        with torch.enable_grad():
            u = ((x0.detach().float() + 1) / 2).requires_grad_(True)
            for _ in range(iters):
                (g,) = torch.autograd.grad(0.5 * (op(u) - target).pow(2).sum(), [u])
                u = (u - step * g).clamp(0, 1).detach().requires_grad_(True)
        return (u.detach() * 2 - 1).to(x0.dtype)

    return correct


@torch.no_grad()
def restore_diffusion(model: Any, x_corrupted: torch.Tensor, name: str, strength: float,
                      mask: torch.Tensor | None = None, *, sdedit_strength: float | None = None, samples: int = 1,
                      steps: int = 100, sampler: str = "ddpm", labels: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, progress: Progress = None,
                      should_stop: ShouldStop = None, consistency: bool = True) -> torch.Tensor | None:
    """SDEdit (RePaint for masks) with the strength from `diffusion_strength` unless given; for blur, low light and
    downsampling (with `consistency`), every step's clean-image estimate is also pulled towards explaining the
    observation (`data_consistency`). `samples` > 1 averages
    that many independent restorations (an estimate of the posterior mean, which scores higher PSNR than any one
    sample, at `samples` times the cost). Returns None when stopped."""
    check_name(name)
    model = _model(model)
    s = diffusion_strength(model, name, strength) if sdedit_strength is None else float(sdedit_strength)
    b = x_corrupted.shape[0]
    xs = x_corrupted.repeat(samples, 1, 1, 1)
    ms = mask.repeat(samples, 1, 1, 1) if mask is not None else None
    ys = labels.repeat(samples) if labels is not None else None
    dc = data_consistency(name, strength, xs) if consistency else None
    out = model.restore(xs, strength=s, mask=ms, labels=ys, steps=steps, sampler=sampler, generator=generator,
                        progress=progress, should_stop=should_stop, consistency=dc)
    if out is None:
        return None
    out = out.view(samples, b, *x_corrupted.shape[1:]).mean(0)
    return keep_known(out, x_corrupted, mask).cpu()


# ------------------------------------------------------------------------------------------------------ metrics
def image_metrics(clean: torch.Tensor, restored: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR dB, SSIM) of [0, 1] images (B, C, H, W), scikit-image, data range 1."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = clean.detach().float().cpu().numpy().astype(np.float64)
    b = restored.detach().float().cpu().numpy().astype(np.float64)
    psnr, ssim = np.empty(len(a)), np.empty(len(a))
    for i in range(len(a)):
        x, y = np.moveaxis(a[i], 0, -1), np.moveaxis(b[i], 0, -1)
        psnr[i] = min(peak_signal_noise_ratio(x, y, data_range=1.0), 100.0)     # identical images: cap, not inf
        win = min(7, x.shape[0] - (1 - x.shape[0] % 2), x.shape[1] - (1 - x.shape[1] % 2))
        ssim[i] = structural_similarity(x, y, data_range=1.0, channel_axis=-1, win_size=max(3, win))
    return psnr, ssim


# ------------------------------------------------------------------------------------------------ one image row
def restorer_names(vae: Any, diffusion: Any, name: str, *, all_classical: bool = False) -> list[str]:
    """The restorers that apply: "vae", "vae-refined", "diffusion" (when those models are loaded), "classical:M"."""
    names = (["vae", "vae-refined"] if vae is not None else []) + (["diffusion"] if diffusion is not None else [])
    methods = CLASSICAL[name] if all_classical else CLASSICAL[name][:1]
    return names + [f"classical:{m}" for m in methods]


def run_restorer(restorer: str, x_corrupted: torch.Tensor, name: str, strength: float, mask: torch.Tensor | None, *,
                 vae: Any = None, diffusion: Any = None, generator: torch.Generator | None = None,
                 refine_steps: int = 100, diffusion_samples: int = 1, progress: Progress = None,
                 should_stop: ShouldStop = None) -> torch.Tensor | None:
    """Dispatch one restorer by its name (see `restorer_names`). None when stopped."""
    if restorer == "vae":
        return restore_vae(vae, x_corrupted, mask)
    if restorer == "vae-refined":
        return restore_vae_refined(vae, x_corrupted, name, strength, mask, steps=refine_steps, progress=progress,
                                   should_stop=should_stop)
    if restorer == "diffusion":
        return restore_diffusion(diffusion, x_corrupted, name, strength, mask, samples=diffusion_samples,
                                 generator=generator, progress=progress, should_stop=should_stop)
    if restorer.startswith("classical"):
        method = restorer.partition(":")[2] or None
        return restore_classical(x_corrupted, name, strength, mask, method)
    raise UserError(f"unknown restorer {restorer!r}")


def restore_row(clean: torch.Tensor, name: str, strength: float, *, vae: Any = None, diffusion: Any = None,
                seed: int = 0, refine_steps: int = 100, diffusion_samples: int = 1, progress: Progress = None,
                should_stop: ShouldStop = None) -> Iterator[dict[str, Any]]:
    """Corrupt `clean` (B, C, H, W) and run every applicable restorer, yielding one dict per image set as it is done:
    {"restorer", "images" (float32 numpy (B, C, H, W)), "psnr", "ssim" (numpy (B,)), "seconds"}; the first item is
    the corruption itself ("corrupted", with "mask"). Stops quietly (no more items) when should_stop() is true."""
    g = torch.Generator().manual_seed(seed)
    x_c, mask = corrupt(clean.float().cpu(), name, strength, generator=g)
    psnr, ssim = image_metrics(clean, x_c)
    yield {"restorer": "corrupted", "images": x_c.numpy(), "psnr": psnr, "ssim": ssim, "seconds": 0.0,
           "mask": None if mask is None else mask.numpy()}
    names = restorer_names(vae, diffusion, name)
    for k, restorer in enumerate(names):
        if should_stop is not None and should_stop():
            return
        if progress is not None:
            progress(k, len(names))
        t0 = time.perf_counter()
        out = run_restorer(restorer, x_c, name, strength, mask, vae=vae, diffusion=diffusion, generator=g,
                           refine_steps=refine_steps, diffusion_samples=diffusion_samples, should_stop=should_stop)
        if out is None:
            return
        seconds = time.perf_counter() - t0
        psnr, ssim = image_metrics(clean, out)
        yield {"restorer": restorer, "images": out.float().numpy(), "psnr": psnr, "ssim": ssim, "seconds": seconds}
    if progress is not None:
        progress(len(names), len(names))


# --------------------------------------------------------------------------------------------- batch evaluation
def batch_evaluate(vae: Any, diffusion: Any, dataset: Any, *, corruptions: Sequence[str] = CORRUPTIONS,
                   strengths: Sequence[float] | None = None, n_images: int = 100, seed: int = 0,
                   progress: Progress = None, should_stop: ShouldStop = None, split: str = "test",
                   restorers: Sequence[str] | None = None, refine_steps: int = 100,
                   diffusion_samples: int = 1) -> list[dict[str, Any]]:
    """Corrupt `n_images` images of the split (a seeded random choice) with each corruption at each strength
    (None: each corruption's default, STRENGTHS) and score every restorer (default: all that apply, every classical
    method) against the clean images. Rows: corruption, strength, restorer, n, psnr_mean, psnr_std, ssim_mean,
    ssim_std, seconds_per_image ("corrupted" rows score the input itself). On a stop, returns the rows done."""
    from core.data import as_float

    for c in corruptions:
        check_name(c)
    part = dataset.split(split)
    if len(part) == 0:
        raise UserError(f"the {split} split is empty; pick a dataset with {split} images")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(part), generator=g)[: max(1, min(n_images, len(part)))]
    clean = as_float(part.images[idx.to(part.images.device)]).cpu()
    plan = [(c, float(s)) for c in corruptions for s in (strengths if strengths is not None else [STRENGTHS[c][0]])]
    units = [(c, s, r) for c, s in plan for r in (restorers or restorer_names(vae, diffusion, c, all_classical=True))]
    rows: list[dict[str, Any]] = []
    done = 0
    for c, s in plan:
        cg = torch.Generator().manual_seed(seed + 1)
        x_c, mask = corrupt(clean, c, s, generator=cg)
        rows.append(_row(c, s, "corrupted", *image_metrics(clean, x_c), 0.0))
        for restorer in [r for cc, ss, r in units if (cc, ss) == (c, s)]:
            if should_stop is not None and should_stop():
                return rows
            t0 = time.perf_counter()
            out = run_restorer(restorer, x_c, c, s, mask, vae=vae, diffusion=diffusion,
                               generator=torch.Generator().manual_seed(seed + 2), refine_steps=refine_steps,
                               diffusion_samples=diffusion_samples, should_stop=should_stop)
            if out is None:
                return rows
            seconds = (time.perf_counter() - t0) / len(clean)
            rows.append(_row(c, s, restorer, *image_metrics(clean, out), seconds))
            done += 1
            if progress is not None:
                progress(done, len(units))
    return rows


def _row(corruption: str, strength: float, restorer: str, psnr: np.ndarray, ssim: np.ndarray,
         seconds: float) -> dict[str, Any]:
    return {"corruption": corruption, "strength": strength, "restorer": restorer, "n": int(len(psnr)),
            "psnr_mean": float(psnr.mean()), "psnr_std": float(psnr.std()), "ssim_mean": float(ssim.mean()),
            "ssim_std": float(ssim.std()), "seconds_per_image": float(seconds)}


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ROW_FIELDS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in ROW_FIELDS})
    return path


def write_json(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(rows), indent=2))
    return path


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of rows (for the CLI and benchmarks)."""
    lines = [f"{'corruption':<14} {'strength':>8} {'restorer':<26} {'PSNR':>13} {'SSIM':>13} {'s/img':>8}"]
    for r in rows:
        lines.append(f"{r['corruption']:<14} {r['strength']:>8.3g} {r['restorer']:<26} "
                     f"{r['psnr_mean']:>6.2f}±{r['psnr_std']:<5.2f} {r['ssim_mean']:>6.3f}±{r['ssim_std']:<5.3f} "
                     f"{r['seconds_per_image']:>8.4f}")
    return "\n".join(lines)
