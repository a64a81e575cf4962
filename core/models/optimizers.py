"""How a model trains: its optimisers and the weights its EMA averages (nanoGPT's `configure_optimizers`).

A model may say how it is optimised by defining `configure_optimizers(train_cfg) -> Optimizers`
(`protocol.ConfiguresOptimizers`); one that does not gets `default_optimizers`: one Adam over all its parameters at
`train_cfg.lr`, every weight averaged. The Trainer asks `configure_optimizers(model, train_cfg)` and steps what it is
given, so a new model kind with its own optimisers needs no branch in the Trainer.

The model's optimiser (`Optimizers.model`) minimises `model.loss(...)["loss"]`: its gradient norm is logged, clipped
(`grad_clip`), compared with `grad_skip`, and the learning-rate schedule moves it. An `ExtraObjective` (a VAE-GAN's
discriminator) is a second optimiser with a loss of its own, taken on the same batch after the model's backward pass
and before either optimiser steps; a step that is skipped is skipped for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.config import TrainConfig
from core.models.protocol import ConfiguresOptimizers

MODEL = "model"   # the name of the model's own optimiser (in checkpoints too)


@dataclass(frozen=True)
class ExtraObjective:
    """A second optimiser with its own loss. `loss(x, y, *, step)` returns named terms (logged with the model's);
    `key` names the one `optimizer` minimises. A `key` term without a gradient means "no step for it at this step".
    Its gradients must reach only its own parameters (a VAE-GAN's discriminator loss detaches the fakes)."""

    name: str
    optimizer: torch.optim.Optimizer
    loss: Callable[..., dict[str, Tensor]]
    key: str

    def __post_init__(self) -> None:
        assert self.name != MODEL, f"an extra objective cannot be named {MODEL!r}: that is the model's optimiser"


@dataclass(frozen=True)
class Optimizers:
    """What `configure_optimizers` returns: the model's optimiser, extra objectives with optimisers of their own, and
    the parameters the EMA averages (None: all of them; any other parameter of the model follows the live weights in
    the EMA copy, like a buffer)."""

    model: torch.optim.Optimizer
    extra: tuple[ExtraObjective, ...] = ()
    averaged: tuple[nn.Parameter, ...] | None = None

    def __post_init__(self) -> None:
        names = [e.name for e in self.extra]
        assert len(set(names)) == len(names), f"extra objectives need distinct names, not {names}"

    def named(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by its name: what a checkpoint saves and a resumed run loads."""
        return {MODEL: self.model, **{e.name: e.optimizer for e in self.extra}}


def adam(params: Iterable[nn.Parameter], train_cfg: TrainConfig, **options) -> torch.optim.Adam:
    """Adam at `train_cfg.lr`; on CUDA with `fused_adam`, its fused kernel (one launch for all parameters, measured
    in bench/gpu_suite.py); the CPU keeps the default for-each implementation."""
    params = list(params)
    fused = {"fused": True} if train_cfg.fused_adam and params and params[0].is_cuda else {}
    return torch.optim.Adam(params, lr=train_cfg.lr, **fused, **options)


def default_optimizers(model: nn.Module, train_cfg: TrainConfig) -> Optimizers:
    """One Adam over every parameter, all averaged. Frozen parameters (a second stage's first stage) stay in its
    list: they get no gradient and so no state, and the list's layout is the one checkpoints were saved with."""
    return Optimizers(adam(model.parameters(), train_cfg))


def configure_optimizers(model: nn.Module, train_cfg: TrainConfig) -> Optimizers:
    """The model's own optimisers when it configures them, else `default_optimizers`."""
    if isinstance(model, ConfiguresOptimizers):
        setup = model.configure_optimizers(train_cfg)
        assert isinstance(setup, Optimizers), (f"{type(model).__name__}.configure_optimizers returned "
                                               f"{type(setup).__name__}, not an Optimizers")
        return setup
    return default_optimizers(model, train_cfg)
