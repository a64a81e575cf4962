"""Exponential moving average of a model's weights, the copy previews, checkpoints and the panels use."""

from __future__ import annotations

import copy

import torch


class EMA:
    """A frozen copy of `model` whose weights follow it: w_ema <- decay * w_ema + (1 - decay) * w after each step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        ema_p = list(self.module.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
