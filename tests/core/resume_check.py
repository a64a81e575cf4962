"""Exact resume, checked the same way for every model variant: train straight through, and train again stopping at
`stop_at` and resuming from the interrupt checkpoint; both runs end with equal weights (model and EMA) and log equal
metrics at every step."""

from __future__ import annotations

from pathlib import Path

import torch

from core.config import Config
from core.training.checkpoint import Checkpoint, load_checkpoint
from core.training.events import StepMetrics
from core.training.trainer import Trainer


def step_metrics(events) -> dict[int, dict[str, float]]:
    return {ev.step: ev.metrics for ev in events if isinstance(ev, StepMetrics)}


def stop_and_resume(cfg: Config, dataset, tmp_path: Path, stop_at: int) -> tuple[Checkpoint, Checkpoint, dict, dict]:
    """(straight checkpoint, resumed checkpoint, straight step metrics, resumed step metrics), after asserting that
    the two runs' weights are equal and that the stop happened."""
    whole = list(Trainer(cfg, run_dir=tmp_path / "a", dataset=dataset).run())
    trainer = Trainer(cfg, run_dir=tmp_path / "b", dataset=dataset)
    first = []
    for ev in trainer.run():
        first.append(ev)
        if isinstance(ev, StepMetrics) and ev.step == stop_at:
            trainer.stop()
    assert first[-1].status == "stopped"
    rest = list(Trainer(cfg, resume=tmp_path / "b" / "checkpoints" / "last.safetensors", dataset=dataset).run())
    assert rest[-1].status == "completed"
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    for sa, sb in ((a.model_state, b.model_state), (a.ema_state, b.ema_state)):
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    return a, b, step_metrics(whole), {**step_metrics(first), **step_metrics(rest)}
