"""Every restorer on the same corrupted images, scored by PSNR/SSIM and time: one image row for the Denoise / Enhance
panel (`restore_row`) and the batch evaluation behind `vae-explorer restore-eval` (`batch_evaluate`).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.datasets import Dataset
from core.errors import UserError
from core.evaluation.image_quality import ssim_psnr_per_image
from core.images import as_float
from core.models.protocol import DenoisingModel, DiscreteCodeModel, LatentVariableModel, is_vqvae
from core.restoration.classical import CLASSICAL, restore_classical
from core.restoration.corruptions import CORRUPTIONS, STRENGTHS, check_name, corrupt
from core.restoration.learned import (
    Progress,
    ShouldStop,
    restore_codes,
    restore_diffusion,
    restore_vae,
    restore_vae_refined,
)

ROW_FIELDS = ("corruption", "strength", "restorer", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std",
              "seconds_per_image")


# ------------------------------------------------------------------------------------------------ one image row
def restorer_names(vae: LatentVariableModel | DiscreteCodeModel | None, diffusion: DenoisingModel | None, name: str, *,
                   all_classical: bool = False) -> list[str]:
    """The restorers that apply: "vae", "vae-refined", "diffusion" (when those models are loaded), "classical:M".
    A VQ-VAE given as `vae` is the "vae" restorer alone (its nearest codes, `restore_codes`; no latent to refine)."""
    first = ["vae"] if is_vqvae(vae) else ["vae", "vae-refined"]
    names = (first if vae is not None else []) + (["diffusion"] if diffusion is not None else [])
    methods = CLASSICAL[name] if all_classical else CLASSICAL[name][:1]
    return names + [f"classical:{m}" for m in methods]


def run_restorer(restorer: str, x_corrupted: torch.Tensor, name: str, strength: float, mask: torch.Tensor | None, *,
                 vae: LatentVariableModel | DiscreteCodeModel | None = None,
                 diffusion: DenoisingModel | None = None, generator: torch.Generator | None = None,
                 refine_steps: int = 100, diffusion_samples: int = 1, progress: Progress = None,
                 should_stop: ShouldStop = None) -> torch.Tensor | None:
    """Dispatch one restorer by its name (see `restorer_names`). None when stopped."""
    if restorer == "vae":
        return restore_codes(vae, x_corrupted, mask) if is_vqvae(vae) else restore_vae(vae, x_corrupted, mask)
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


def restore_row(clean: torch.Tensor, name: str, strength: float, *, vae: LatentVariableModel | None = None,
                diffusion: DenoisingModel | None = None,
                seed: int = 0, refine_steps: int = 100, diffusion_samples: int = 1, progress: Progress = None,
                should_stop: ShouldStop = None) -> Iterator[dict[str, Any]]:
    """Corrupt `clean` (B, C, H, W) and run every applicable restorer, yielding one dict per image set as it is done:
    {"restorer", "images" (float32 numpy (B, C, H, W)), "psnr", "ssim" (numpy (B,)), "seconds"}; the first item is
    the corruption itself ("corrupted", with "mask"). Stops quietly (no more items) when should_stop() is true."""
    g = torch.Generator().manual_seed(seed)
    x_c, mask = corrupt(clean.float().cpu(), name, strength, generator=g)
    ssim, psnr = ssim_psnr_per_image(clean, x_c)
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
        ssim, psnr = ssim_psnr_per_image(clean, out)
        yield {"restorer": restorer, "images": out.float().numpy(), "psnr": psnr, "ssim": ssim, "seconds": seconds}
    if progress is not None:
        progress(len(names), len(names))


# --------------------------------------------------------------------------------------------- batch evaluation
def batch_evaluate(vae: LatentVariableModel | None, diffusion: DenoisingModel | None, dataset: Dataset, *,
                   corruptions: Sequence[str] = CORRUPTIONS,
                   strengths: Sequence[float] | None = None, n_images: int = 100, seed: int = 0,
                   progress: Progress = None, should_stop: ShouldStop = None, split: str = "test",
                   restorers: Sequence[str] | None = None, refine_steps: int = 100,
                   diffusion_samples: int = 1) -> list[dict[str, Any]]:
    """Corrupt `n_images` images of the split (a seeded random choice) with each corruption at each strength
    (None: each corruption's default, STRENGTHS) and score every restorer (default: all that apply, every classical
    method) against the clean images. Rows: corruption, strength, restorer, n, psnr_mean, psnr_std, ssim_mean,
    ssim_std, seconds_per_image ("corrupted" rows score the input itself). On a stop, returns the rows done."""
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
        rows.append(_row(c, s, "corrupted", *ssim_psnr_per_image(clean, x_c), 0.0))
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
            rows.append(_row(c, s, restorer, *ssim_psnr_per_image(clean, out), seconds))
            done += 1
            if progress is not None:
                progress(done, len(units))
    return rows


def _row(corruption: str, strength: float, restorer: str, ssim: np.ndarray, psnr: np.ndarray,
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
