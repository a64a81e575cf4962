"""Exponential moving average of a model's weights, the copy previews, checkpoints and the panels use."""

from __future__ import annotations

import copy

import torch

from core.models.protocol import AdversarialModel


class EMA:
    """A frozen copy of `model` whose weights follow it: w_ema <- decay * w_ema + (1 - decay) * w after each step."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        # A VAE-GAN's discriminator is not averaged: its copy follows the live one (like a buffer), so the EMA
        # checkpoint stays complete while the averaged weights are the generator's alone.
        disc = {id(p) for p in model.discriminator_parameters()} if isinstance(model, AdversarialModel) else set()
        self._copied = [id(p) in disc for p in model.parameters()]

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
