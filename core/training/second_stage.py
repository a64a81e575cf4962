"""Second-stage training: a run that fits a model (a VQ-VAE's code prior) on top of a frozen first stage.

The Trainer treats a second stage like any run; the model freezes its first stage itself (no gradients, no optimiser
state, eval mode), and `start` gives it the first stage's weights when the run begins (not when it resumes: its own
checkpoint then holds both). What can go wrong is said in one line: no such checkpoint, another kind of model,
another dataset, another architecture.
"""

from __future__ import annotations

from pathlib import Path

from core.config import Config
from core.errors import UserError
from core.models.protocol import GenerativeModel, SecondStageModel


def start(model: GenerativeModel, config: Config) -> None:
    """Load the frozen first stage into `model` when it is a second stage (else nothing to do)."""
    if not isinstance(model, SecondStageModel) or not model.first_stage:
        return
    from core.training.checkpoint import load_checkpoint

    path = Path(model.first_stage)
    ck = load_checkpoint(path)
    if ck.config.model.kind != config.model.kind:
        raise UserError(f"the first stage {path} holds a {ck.config.model.kind} model; a {config.model.kind} prior "
                        f"is fitted to a {config.model.kind} checkpoint")
    if ck.config.data != config.data:
        raise UserError(f"the first stage {path} was trained on other data ({ck.config.data.name}, "
                        f"{ck.config.data.image_size}px) than this run's ({config.data.name}, "
                        f"{config.data.image_size}px); fit the prior on its own data (`train --prior-of` takes it)")
    # The EMA weights when the first stage kept them: those are the ones its samples and evaluation use.
    try:
        model.load_first_stage(ck.ema_state or ck.model_state, ck.config.model)
    except RuntimeError as e:
        raise UserError(f"the first stage {path} does not fit this model ({str(e).splitlines()[0][:200]}); the "
                        "checkpoint is damaged") from None
