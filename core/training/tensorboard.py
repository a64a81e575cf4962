"""An optional event sink that writes a run's numbers as TensorBoard scalars (RUN/tensorboard/), so that the run also
opens in TensorBoard. metrics.jsonl stays the source of truth: this is one more consumer of the Trainer's events.

The files are written by torch's `SummaryWriter`, which needs the `tensorboard` package: an optional extra
(`pip install 'vae-explorer[tensorboard]'`), asked for only when a run wants these files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.training.events import EpochSummary, Event, RunEnded, RunStarted, StepMetrics

INSTALL_HINT = "install tensorboard (pip install 'vae-explorer[tensorboard]')"


def summary_writer_class() -> Callable[..., Any]:
    """torch's SummaryWriter; UserError saying how to install it when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:   # torch.utils.tensorboard imports the tensorboard package at once
        raise UserError(f"--tensorboard: the tensorboard package is not installed; {INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoardSink:
    """Call it with each event of a run: step metrics go to `train/NAME` (and `train/lr`) at their step, validation
    metrics to `val/NAME` and the epoch's training means to `epoch/NAME` at the epoch's last step; the config is one
    text entry. Writing stops (the run goes on) when the files cannot be written, e.g. a full disk."""

    def __init__(self, log_dir: str | Path, *, writer_class: Callable[..., Any] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.writer = (writer_class or summary_writer_class())(log_dir=str(self.log_dir))
        self.failed: str | None = None   # why writing stopped

    def __call__(self, event: Event) -> None:
        if self.writer is None:
            return
        try:
            self._write(event)
        except OSError as e:
            self.failed = f"TensorBoard files are no longer written to {self.log_dir}: {e.strerror or e}"
            self.close()

    def _write(self, event: Event) -> None:
        w = self.writer
        if isinstance(event, StepMetrics):
            for name, value in event.metrics.items():
                w.add_scalar(f"train/{name}", float(value), event.step)
            w.add_scalar("train/lr", float(event.lr), event.step)
            if event.grad_norm is not None:
                w.add_scalar("train/grad_norm", float(event.grad_norm), event.step)
        elif isinstance(event, EpochSummary):
            for name, value in event.val.items():
                w.add_scalar(f"val/{name}", float(value), event.step)
            for name, value in event.train.items():
                w.add_scalar(f"epoch/{name}", float(value), event.step)
        elif isinstance(event, RunStarted):
            w.add_text("config", "```\n" + json.dumps(dict(event.config), indent=2) + "\n```", event.start_step)
        elif isinstance(event, RunEnded):
            w.flush()

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass
