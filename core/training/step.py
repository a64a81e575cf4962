"""One optimisation step of the Trainer: forward, backward, the gradient norm, the skip decision, clipping, the
learning-rate schedule, the optimisers' steps and the EMA update.

Every step's gradient norm (the model optimiser's parameters, before clipping) is returned for the step records
(vdvae); with `grad_skip` > 0 a step whose norm exceeds it is skipped like a non-finite one (nothing updated). The
model's extra objectives (a VAE-GAN's discriminator: core/models/optimizers.py) take their own backward and step here,
so the Trainer has no branch on a model's kind.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from core.config import TrainConfig
from core.images import as_float
from core.models.optimizers import MODEL, ExtraObjective, Optimizers
from core.training.distributed import Group
from core.training.ema import EMA


def cosine_lr(base: float, step: int, total_steps: int) -> float:
    """Cosine decay from `base` at step 0 to 0 at the last step."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))


class StepOutcome(NamedTuple):
    metrics: dict[str, torch.Tensor]   # the loss terms (whole-batch means on a distributed run), on the device
    grad_norm: torch.Tensor            # of the model optimiser's parameters, before clipping
    skipped: str | None                # None when applied; "non-finite" or "grad_skip" when nothing was updated


class OptimisationStep:
    """Applies one step to the model on a uint8 batch (see the module docstring). `stop_agreed` is, on a distributed
    run, the stop flag all ranks agreed on at the last step (they must stop at the same one)."""

    def __init__(self, *, model: torch.nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]],
                 optimizers: Optimizers, ema: EMA | None, train: TrainConfig, base_lrs: dict[str, list[float]],
                 total_steps: int, device: torch.device, dist: Group | None) -> None:
        self.model, self.loss_fn, self.optimizers, self.ema = model, loss_fn, optimizers, ema
        self.train, self.base_lrs, self.total_steps, self.dist = train, base_lrs, total_steps, dist
        self.params = [p for g in optimizers.model.param_groups for p in g["params"] if p.requires_grad]
        self.cuda = device.type == "cuda"
        self.autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.cuda and train.amp
                         else contextlib.nullcontext)
        self.stop_agreed = False

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor, step: int, *,
                 stop_requested: Callable[[], bool] = lambda: False) -> StepOutcome:
        """Step number `step` on the batch. A skipped step changes nothing (its gradients are dropped).
        `stop_requested()`: whether this rank was asked to stop, sent to the others with the step's metrics."""
        tc, opts, dist = self.train, self.optimizers, self.dist
        if dist is not None:
            xb, yb = dist.shard(xb, yb)
        x = as_float(xb)
        if self.cuda and tc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            out = self.loss_fn(x, yb, step=step)
        loss = out["loss"]
        opts.model.zero_grad(set_to_none=True)
        (loss if dist is None else dist.weighted(loss)).backward()
        # clip_grad_norm_ in its two halves: the one norm it computes serves the log, the skip decision and the
        # clipping (no second pass), and nothing is clipped before the step is known to be applied.
        norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        if dist is not None:   # whole-batch metrics, and the stop flag all ranks act on
            out, self.stop_agreed = dist.reduce_step(out, stop_requested())
            loss = out["loss"]
        extra = self._extra_backward(x, yb, out, step)
        finite = torch.isfinite(loss) & torch.isfinite(norm)
        for _, extra_loss in extra:
            finite = finite & torch.isfinite(extra_loss)
        ok = finite & (norm <= tc.grad_skip) if tc.grad_skip > 0 else finite
        if not bool(ok):   # the one sync per step
            for opt in opts.named().values():
                opt.zero_grad(set_to_none=True)
            return StepOutcome(out, norm, "non-finite" if not bool(finite) else "grad_skip")
        for objective, _ in extra:
            objective.optimizer.step()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(self.params, tc.grad_clip, norm)
        if tc.lr_schedule == "cosine":   # a function of the step alone: exact resume needs no state
            for g, base in zip(opts.model.param_groups, self.base_lrs[MODEL], strict=True):
                g["lr"] = cosine_lr(base, step, self.total_steps)
        opts.model.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return StepOutcome(out, norm, None)

    def _extra_backward(self, x: torch.Tensor, yb: torch.Tensor, out: dict[str, torch.Tensor], step: int
                        ) -> list[tuple[ExtraObjective, torch.Tensor]]:
        """Each extra objective's loss on this batch (its terms join `out`) and its gradients: the (objective, loss)
        pairs that train at this step (a loss without a gradient, a VAE-GAN's discriminator before
        adversarial_start, does not). Taken before any optimiser steps: every loss sees the networks as they were at
        this step, as in VQGAN."""
        training = []
        for objective in self.optimizers.extra:
            objective.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                terms = objective.loss(x, yb, step=step)
            out.update({k: v.detach() for k, v in terms.items()})
            extra_loss = terms[objective.key]
            if extra_loss.requires_grad:
                extra_loss.backward()
                training.append((objective, extra_loss.detach()))
        return training

    @property
    def learning_rate(self) -> float:
        """The model optimiser's current learning rate (its first param group's), for the step records."""
        return self.optimizers.model.param_groups[0]["lr"]
