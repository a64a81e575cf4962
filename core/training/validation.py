"""The end of an epoch's measurements: validation metrics under a fixed seed that leaves the training RNG alone (so a
resumed run stays exact), the score that decides the best checkpoint and early stopping, and the model snapshot
(CPU numpy copies: only copies cross threads)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.data.datasets import Split
from core.images import as_float
from core.models.protocol import GenerativeModel, is_vae
from core.training.events import ModelSnapshot

VAL_BATCH = 512
VAL_SEED_OFFSET = 12345   # validation's seed is train.seed + this


@torch.no_grad()
def validate(model: GenerativeModel, split: Split, *, step: int, seed: int, device: torch.device
             ) -> tuple[dict[str, float], np.ndarray | None]:
    """Validation metrics (batch-size weighted means) and a VAE's mean KL per latent dimension (None for other
    models), under seed `seed` + VAL_SEED_OFFSET; the global RNG is as it was afterwards."""
    if len(split) == 0:
        return {}, None
    vae = is_vae(model)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed + VAL_SEED_OFFSET)
        sums: torch.Tensor | None = None
        kl_sum = None
        keys: list[str] = []
        n = 0
        for xb, yb in split.batches(VAL_BATCH, shuffle=False):
            x = as_float(xb)
            if vae:
                out = model.loss(x, yb, step=step, with_kl_dims=True)
                kd = out.pop("kl_dims") * len(xb)
                kl_sum = kd if kl_sum is None else kl_sum + kd
            else:
                out = model.loss(x, yb, step=step)
            keys = list(out)
            vals = torch.stack([out[k].float() for k in keys]) * len(xb)
            sums = vals if sums is None else sums + vals
            n += len(xb)
    val = dict(zip(keys, (sums / n).tolist(), strict=True))
    return val, (None if kl_sum is None else (kl_sum / n).float().cpu().numpy())


def epoch_score(val: dict[str, float], train_metrics: dict[str, float]) -> tuple[float, bool]:
    """(the epoch's score, whether higher is better): the validation ELBO when there is one, else the loss (the
    training metrics' when there is no validation split)."""
    scores = val or train_metrics
    if "elbo" in scores:
        return scores["elbo"], True
    return scores.get("loss", float("nan")), False


def model_snapshot(model: torch.nn.Module, *, epoch: int, step: int, config: dict[str, Any],
                   meta: dict[str, Any]) -> ModelSnapshot:
    """The weights as CPU numpy copies (floating ones as float32) for panels that decode off the training thread."""
    return ModelSnapshot(epoch, step, config, meta,
                         {k: v.detach().float().cpu().numpy().copy() if v.is_floating_point()
                          else v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()})
