"""Exponential moving average of a model's weights, the copy previews, checkpoints and the panels use."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch


class EMA:
    """A frozen copy of `model` whose weights follow it: w_ema <- decay * w_ema + (1 - decay) * w after each step.

    `averaged` are the parameters averaged (None: all, the usual case); the model's other parameters are copied as
    they are (like buffers), so the EMA checkpoint stays complete while the averaged weights are the ones the model
    chose (`Optimizers.averaged`: a VAE-GAN's generator, not its discriminator)."""

    def __init__(self, model: torch.nn.Module, decay: float, *,
                 averaged: Iterable[torch.nn.Parameter] | None = None) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        chosen = None if averaged is None else {id(p) for p in averaged}
        self._copied = [chosen is not None and id(p) not in chosen for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        pairs = list(zip(self.module.parameters(), model.parameters(), strict=True))
        averaged = [(e, p.detach()) for (e, p), copied in zip(pairs, self._copied, strict=True) if not copied]
        if averaged:
            torch._foreach_lerp_([e for e, _ in averaged], [p for _, p in averaged], 1.0 - self.decay)
        for (e, p), copied in zip(pairs, self._copied, strict=True):
            if copied:
                e.copy_(p)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
