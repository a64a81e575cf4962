"""A VQ-VAE's numbers: reconstruction (nats, SSIM/PSNR), codebook use, and the code prior's likelihood.

With its deterministic one-hot posterior, a VQ-VAE's KL term is -log p(codes) under its prior, so
-ELBO = reconstruction NLL + prior NLL (van den Oord et al. 2017): the `elbo` and `bits_per_dim` here are comparable
to a VAE's on the same data. The prior's own fit is also given per code cell (`prior_bits_per_code`): a uniform prior
scores log2(codebook size). Codebook perplexity is exp(entropy) of the codes' use over the whole split (the number of
equally used codes that would give the same entropy); usage is the share of codes used at least once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.data.datasets import Split
from core.evaluation.image_quality import ssim_psnr_per_image
from core.images import as_float
from core.models.protocol import DiscreteCodeModel


def codebook_use(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Perplexity (exp entropy, in codes) and usage (share used) of the codes (any shape) over `codebook_size`."""
    counts = torch.bincount(codes.reshape(-1).long().cpu(), minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return {"codebook_perplexity": math.exp(entropy), "codebook_usage": float((counts > 0).double().mean()),
            "codebook_used": int((counts > 0).sum())}


@torch.no_grad()
def code_terms(model: DiscreteCodeModel, data: Split, batch_size: int, device: torch.device, conditional: bool,
               tick: Callable[[], None], stopped: Callable[[], bool], result: dict[str, Any]) -> bool:
    """Reconstruction, codebook and prior numbers of `data` into `result`; False when stopped."""
    dims = model.channels * model.image_size * model.image_size
    recon_sum = prior_sum = 0.0
    ssims, psnrs, all_codes = [], [], []
    for x8, y in data.batches(batch_size, shuffle=False):
        if stopped():
            return False
        x, y_in = as_float(x8).to(device), (y.to(device) if conditional else None)
        codes = model.encode_codes(x)
        images = model.decode_codes(codes)
        # decode_codes gives the mean image (sigmoid of the logits): the Bernoulli NLL from it, clamped as BCE does.
        recon_sum += float(F.binary_cross_entropy(images.clamp(1e-7, 1 - 1e-7), x, reduction="sum"))
        s, p = ssim_psnr_per_image(images, x)
        ssims.append(s)
        psnrs.append(p)
        all_codes.append(codes.cpu())
        if model.has_prior:
            prior_sum += float(model.prior_nll(codes, y_in).sum())
        tick()
    n = len(data)
    ssim_all, psnr_all = np.concatenate(ssims), np.concatenate(psnrs)
    result.update(recon=recon_sum / n, ssim=float(ssim_all.mean()), ssim_std=float(ssim_all.std()),
                  psnr=float(psnr_all.mean()), psnr_std=float(psnr_all.std()), codebook_size=model.codebook_size,
                  code_grid=f"{model.grid}x{model.grid}")
    result.update(codebook_use(torch.cat(all_codes), model.codebook_size))
    if model.has_prior:
        cells = model.grid * model.grid
        prior_nll = prior_sum / n
        elbo = -(result["recon"] + prior_nll)
        result.update(prior_nll=prior_nll, prior_bits_per_code=prior_nll / (cells * math.log(2)),
                      uniform_bits_per_code=math.log2(model.codebook_size), elbo=elbo,
                      bits_per_dim=-elbo / (dims * math.log(2)))
        result["bits_per_dim_note"] = ("reconstruction NLL (bernoulli on [0,1] pixels) + the code prior's NLL; not "
                                       "comparable to 8-bit (discretized) numbers in the literature")
    else:
        result["code_prior_note"] = ("no code prior yet (a first-stage checkpoint): no ELBO, bits/dim or samples; "
                                     "train it with `vae-explorer train --prior-of CHECKPOINT`")
    return True
