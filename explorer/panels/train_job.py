"""The training job behind the dashboard: owns a `core.training.trainer.Trainer` on the worker thread and turns its
model
snapshots into CPU models there, at a rate the other panels can afford to follow."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.config import Config
from core.training.events import ModelSnapshot, RunEnded

SNAPSHOT_MIN_S = 10.0   # least time between models handed to the other panels during a run


@dataclasses.dataclass(frozen=True)
class SnapshotLoaded:
    """A ModelSnapshot already rebuilt into a CPU LoadedModel on the worker thread."""

    epoch: int
    loaded: Any


class TrainJob:
    """Owns the Trainer on the worker thread; pause/resume/stop are safe to call from the GUI thread at any time,
    including before the trainer exists (it is built on the worker thread: building loads the dataset)."""

    def __init__(self, config: Config, *, run_dir: Path | None, resume: str | None = None,
                 threads: int | None = None) -> None:
        self.config, self.run_dir, self.resume_path, self.threads = config, run_dir, resume, threads
        self.trainer: Any = None
        self._lock = threading.Lock()
        self._stop = False
        self._paused = False

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            if self.trainer is not None:
                self.trainer.stop()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self.trainer is not None:
                self.trainer.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self.trainer is not None:
                self.trainer.resume()

    @property
    def paused(self) -> bool:
        with self._lock:
            return self.trainer.paused if self.trainer is not None else self._paused

    def events(self) -> Iterator[Any]:
        # The run folder has one writer: its lock is held for the whole run (a folder another process writes is
        # refused with its holder's name, as a UserError on screen).
        with _run_folder_lock(self.run_dir, self.resume_path):
            yield from self._events()

    def _events(self) -> Iterator[Any]:
        from core.training.checkpoint import from_snapshot
        from core.training.trainer import Trainer

        # On resume the Trainer takes data and model settings from the checkpoint (they must match the weights) and
        # the training options from the form (e.g. more epochs), and continues in the checkpoint's run folder.
        trainer = Trainer(self.config, run_dir=self.run_dir, resume=self.resume_path, threads=self.threads)
        with self._lock:
            self.trainer = trainer
            if self._paused:
                trainer.pause()
            if self._stop:
                trainer.stop()
        # Snapshots reach AppState at most once per epoch and once per SNAPSHOT_MIN_S: every new model makes the
        # other panels re-encode / re-sample, which on a small CPU machine takes cores away from training. The last
        # snapshot of the run is always delivered.
        last_epoch, last_time, pending = -1, -float("inf"), None
        for ev in trainer.run():
            if isinstance(ev, ModelSnapshot):
                if ev.epoch == last_epoch:
                    continue
                if time.monotonic() - last_time >= SNAPSHOT_MIN_S:
                    last_epoch, last_time, pending = ev.epoch, time.monotonic(), None
                    yield SnapshotLoaded(ev.epoch, from_snapshot(ev))
                else:
                    pending = ev
                continue
            if isinstance(ev, RunEnded) and pending is not None:
                yield SnapshotLoaded(pending.epoch, from_snapshot(pending))
                pending = None
            yield ev


def _run_folder_lock(run_dir: Path | None, resume: str | None) -> Any:
    """The lock of the folder the Trainer writes: `run_dir`, else (resuming) the checkpoint's own run folder."""
    import contextlib

    from core.training.run_folder import acquire_run_folder

    if run_dir is None and resume is not None and Path(resume).resolve().parent.name == "checkpoints":
        run_dir = Path(resume).resolve().parent.parent
    if run_dir is None:
        return contextlib.nullcontext()
    return acquire_run_folder(run_dir, resume=resume is not None, command="the VAE Explorer window")
