"""The Trainer's second-stage mode: a run that fits a model (a VQ-VAE's code prior) on top of a frozen first stage.

A model declares that its run is a second stage (`SecondStageModel` with a `first_stage` checkpoint); the Trainer then
runs in this mode (`Trainer.second_stage`, None for an ordinary run): when the run begins (not when it resumes: its own
checkpoint then holds both stages) `SecondStage.begin` gives the model the first stage's weights, and the run says in
its log what it is fitted to. The model freezes its first stage itself (no gradients, so no optimiser state and no
part in the gradient norm; eval mode); `begin` checks that it did. Everything else is an ordinary run: the same loop,
checkpoints, exact resume. What can go wrong is said in one line: no such checkpoint, another kind of model, another
dataset, another architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import Config
from core.errors import UserError
from core.models.protocol import GenerativeModel, SecondStageModel


@dataclass(frozen=True)
class SecondStage:
    """A second-stage run of `model` over the frozen first stage in `first_stage` (a checkpoint file)."""

    model: SecondStageModel
    first_stage: Path

    def begin(self, config: Config) -> None:
        """Load the frozen first stage into the model (a run that starts, not one that resumes)."""
        from core.training.checkpoint import load_checkpoint

        path, model = self.first_stage, self.model
        ck = load_checkpoint(path)
        if ck.config.model.kind != config.model.kind:
            raise UserError(f"the first stage {path} holds a {ck.config.model.kind} model; a {config.model.kind} "
                            f"prior is fitted to a {config.model.kind} checkpoint")
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
        assert any(not p.requires_grad for p in model.parameters()), (
            f"{type(model).__name__} is a second stage but froze none of its weights: it must freeze its first stage")

    def describe(self, *, resumed: bool) -> str:
        """The run log's line for this mode."""
        frozen = sum(p.numel() for p in self.model.parameters() if not p.requires_grad)
        trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        whence = "its own checkpoint holds both stages" if resumed else "loaded"
        return (f"second stage: fitting {trained:,} weights on top of the frozen first stage {self.first_stage} "
                f"({frozen:,} weights; {whence})")


def of(model: GenerativeModel) -> SecondStage | None:
    """The second-stage mode `model`'s run declares, or None for an ordinary run."""
    if not isinstance(model, SecondStageModel) or not model.first_stage:
        return None
    return SecondStage(model, Path(model.first_stage))
