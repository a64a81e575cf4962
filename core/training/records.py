"""What a run says about itself as it trains: the run folder's record (`RunRecord`: config.json and metrics.jsonl, one
event record per line, flushed) and the numbers of its step records (`MetricSums`: the log window's and the epoch's
mean metrics and gradient norm, summed on the device with no sync per step; `Clock`: images/s and the time left, paused
time left out).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import IO

import torch

from core.config import Config
from core.files import atomic_write_text
from core.training.events import Event, StepMetrics, to_record
from core.training.run_folder import remove_leftovers


class RunRecord:
    """The run folder's config.json and metrics.jsonl. A record that can no longer be written (a full disk) stops
    being written; the run and its events go on, and the failure that follows (the next checkpoint cannot be saved
    either) is reported as such."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None

    def open(self, run_dir: Path, config: Config) -> None:
        """Make the run folder's layout, write its config and append to its metrics.jsonl."""
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        remove_leftovers(run_dir)   # a save killed mid-write (kill -9) left its temporary file: resuming ends it
        (run_dir / "samples").mkdir(exist_ok=True)
        atomic_write_text(run_dir / "config.json", config.to_json())
        self._file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def write(self, event: Event) -> Event:
        """Record `event` (when it is a recorded kind) and return it."""
        if self._file is not None:
            record = to_record(event)
            if record is not None:
                try:
                    self._file.write(json.dumps(record) + "\n")
                    self._file.flush()
                except OSError:
                    self.close()
        return event

    def close(self) -> None:
        log, self._file = self._file, None
        if log is not None:
            with contextlib.suppress(OSError):      # its last flush may meet a full disk
                log.close()


class MetricSums:
    """Running sums of a step's metrics and gradient norm on the device (no sync per step), for the log window and
    the epoch."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.window = self.epoch = None
        self.window_n = self.epoch_n = 0

    def add(self, out: dict[str, torch.Tensor], grad_norm: torch.Tensor) -> None:
        if self.keys is None:
            self.keys = list(out)
        vals = torch.stack([*(out[k].detach().float() for k in self.keys), grad_norm.detach().float()])
        self.window = vals if self.window is None else self.window + vals
        self.epoch = vals if self.epoch is None else self.epoch + vals
        self.window_n += 1
        self.epoch_n += 1

    def take_window(self) -> tuple[dict[str, float], float]:
        """(the window's mean metrics, its mean gradient norm)."""
        *means, grad_norm = (self.window / self.window_n).tolist()
        self.window, self.window_n = None, 0
        return dict(zip(self.keys, means, strict=True)), grad_norm

    def take_epoch(self) -> dict[str, float]:
        means = (dict(zip(self.keys, (self.epoch[:-1] / self.epoch_n).tolist(), strict=True)) if self.epoch_n
                 else {})
        self.epoch, self.epoch_n = None, 0
        return means


class Clock:
    """When the run (this process's part of it) started, how long it sat paused, and the window the images/s rate is
    measured over. Paused time is not training time: the ETA and an epoch's elapsed time leave it out."""

    def __init__(self, step: int) -> None:
        self.t_start = time.perf_counter()
        self.start_step = step
        self.paused_s = 0.0
        self.restart_window(step, self.t_start)

    def restart_window(self, step: int, now: float | None = None) -> None:
        self.window_t, self.window_step = (time.perf_counter() if now is None else now), step

    def elapsed(self, now: float | None = None) -> float:
        """Seconds spent running (not paused) since the run started in this process."""
        return (time.perf_counter() if now is None else now) - self.t_start - self.paused_s

    def step_metrics(self, sums: MetricSums, *, step: int, epoch: int, total_steps: int, batch_size: int, lr: float,
                     skipped_steps: int) -> StepMetrics:
        """The step record of the window that ends at `step` (its mean metrics, images/s, time left); starts the
        next window."""
        metrics, grad_norm = sums.take_window()
        now = time.perf_counter()
        rate = (step - self.window_step) * batch_size / max(now - self.window_t, 1e-9)
        per_step = self.elapsed(now) / max(step - self.start_step, 1)
        self.restart_window(step, now)
        return StepMetrics(step, epoch, metrics, lr, rate, per_step * (total_steps - step),
                           step / max(total_steps, 1), grad_norm=grad_norm, skipped_steps=skipped_steps)
