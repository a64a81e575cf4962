"""What makes a resumed run end exactly where an uninterrupted one would: where the run is (`RunProgress`, the
counters) and everything a checkpoint must hold besides the weights (`RunCheckpoints`: the EMA, the optimisers'
states, the counters and every RNG state; saved as `last` / `best` / an interrupt, restored on resume).

Batch order depends only on (seed, epoch) (trainer.batch_order_generator), so the position inside the epoch (`pos`)
is enough to continue the same epoch; the global torch RNG states carry the VAE's reparameterisation noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.config import Config
from core.errors import UserError
from core.models.optimizers import Optimizers
from core.training.checkpoint import Checkpoint, save_checkpoint
from core.training.distributed import Group
from core.training.ema import EMA


@dataclass
class RunProgress:
    """Where the run is; all of it goes into a checkpoint's train_state."""

    step: int = 0            # batches processed (skipped steps included)
    epoch: int = 0           # completed epochs
    pos: int = 0             # batches done inside the current epoch
    best: float | None = None
    bad_epochs: int = 0      # epochs since validation last improved (early stopping)
    skipped_steps: int = 0   # steps skipped in the whole run (non-finite, or gradient norm above grad_skip)

    def train_state(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "pos": self.pos, "best": self.best,
                "bad_epochs": self.bad_epochs, "skipped_steps": self.skipped_steps}

    def load(self, st: dict[str, Any]) -> None:
        """The counters of a checkpoint's train_state (those an older checkpoint lacks start at 0)."""
        self.step, self.epoch, self.pos = int(st.get("step", 0)), int(st.get("epoch", 0)), int(st.get("pos", 0))
        self.best, self.bad_epochs = st.get("best"), int(st.get("bad_epochs", 0))
        self.skipped_steps = int(st.get("skipped_steps", 0))

    def judge_epoch(self, score: float, higher_is_better: bool) -> bool:
        """Count an epoch's validation `score` for early stopping; True when it is the best so far."""
        better = self.best is None or (score > self.best if higher_is_better else score < self.best)
        if math.isfinite(score) and better:
            self.best, self.bad_epochs = float(score), 0
            return True
        self.bad_epochs += 1
        return False


def base_learning_rates(optimizers: Optimizers) -> dict[str, list[float]]:
    """The learning rate each param group was configured with, per optimiser name: the cosine schedule decays it,
    and a resumed run keeps it (not the one in the checkpoint, so that a changed train.lr takes effect)."""
    return {name: [g["lr"] for g in opt.param_groups] for name, opt in optimizers.named().items()}


class RunCheckpoints:
    """Saves the run's whole state into `run_dir/checkpoints/` and restores it from a checkpoint on resume. Without
    a run folder (or on a distributed run's other ranks) nothing is saved."""

    def __init__(self, run_dir: Path | None, *, config: Config, meta: Any, device: torch.device, dist: Group | None,
                 model: torch.nn.Module, ema: EMA | None, optimizers: Optimizers,
                 base_lrs: dict[str, list[float]]) -> None:
        self.run_dir, self.config, self.meta, self.device, self.dist = run_dir, config, meta, device, dist
        self.model, self.ema, self.optimizers, self.base_lrs = model, ema, optimizers, base_lrs
        self.last: str | None = None   # the path of the last "last" checkpoint saved

    def save(self, tag: str, progress: RunProgress, metrics: dict[str, float] | None = None) -> str | None:
        """Save checkpoint `tag` ("last", "best"; "interrupt" writes "last"); its path, None without a run folder."""
        ranks_rng = self.dist.rng_states() if self.dist is not None else {}   # a collective: before rank 0 returns
        if self.run_dir is None:
            return None
        name = "best" if tag == "best" else "last"
        state: dict[str, Any] = {**progress.train_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                state[f"cuda.{i:02d}"] = s
        state.update(ranks_rng)
        path = save_checkpoint(self.run_dir / "checkpoints" / f"{name}.safetensors", model=self.model,
                               config=self.config, meta=self.meta,
                               ema=self.ema.module if self.ema is not None else None,
                               optimizers=self.optimizers.named(), train_state=state, metrics=metrics)
        if name == "last":
            self.last = str(path)
        return str(path)

    def restore(self, ck: Checkpoint, progress: RunProgress) -> None:
        """Weights, EMA, optimisers, counters and every RNG as the checkpoint left them (what makes resume exact);
        UserError when they do not fit (a damaged or edited checkpoint)."""
        try:
            self._restore(ck, progress)
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{ck.path}: its weights, optimizer or RNG state do not fit the model its config "
                            f"describes ({str(e).splitlines()[0][:200]}); the checkpoint is damaged, resume from "
                            "another one") from None

    def _restore(self, ck: Checkpoint, progress: RunProgress) -> None:
        self.model.load_state_dict(ck.model_state)
        if self.ema is not None:
            self.ema.module.load_state_dict(ck.ema_state or ck.model_state)
        for name, opt in self.optimizers.named().items():
            if name in ck.optimizer_states:
                opt.load_state_dict(ck.optimizer_states[name])
                for g, lr in zip(opt.param_groups, self.base_lrs[name], strict=True):
                    g["lr"] = lr
        st = ck.train_state
        progress.load(st)
        if "torch" in st:
            torch.set_rng_state(st["torch"])
        if self.device.type == "cuda":
            states = [st[k] for k in sorted(st) if k.startswith("cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        if self.dist is not None:
            self.dist.restore_rng(st, self.config.train.seed)
