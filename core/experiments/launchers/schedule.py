"""The experiment's process while a launcher trains its runs: give the launcher runs as it has room, follow each
run's metrics.jsonl for progress, and end with the experiment's outcome.

Resumable as the serial runner is: a run already trained (and evaluated) is skipped, an interrupted one resumes from
its last checkpoint. A stop (`should_stop`) asks every running job to stop after its step (a stop file each job
watches), waits for their checkpoints, and ends the experiment "stopped". A run another writer holds (a job of an
earlier launch still running, here or on another machine) is followed until its writer lets go, never started twice.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import UserError
from core.experiments.launchers import Launcher
from core.experiments.launchers.job import RunJob, clear_stop_request, launch_files, request_stop
from core.experiments.runner import (
    _TRAIN_SHARE,
    FINISHED,
    ExperimentEnded,
    ExperimentProgress,
    MetricsTail,
    evaluated,
    run_status,
)
from core.experiments.spec import ExperimentSpec, RunSpec


@dataclass
class _Active:
    index: int
    run: RunSpec
    job: RunJob
    handle: Any
    tail: MetricsTail
    done: float = 0.0             # of this run's training
    evaluating: bool = False
    events: list[Any] = field(default_factory=list)


def _is_done(run_dir: Path, evaluate: bool, sources: tuple[str, ...] = ("prior",)) -> bool:
    return run_status(run_dir) in FINISHED and (not evaluate or evaluated(run_dir, sources))


def writer_elsewhere(run_dir: Path) -> str | None:
    """Who else writes the run folder right now (their description), or None: nobody holds its lock (a lock left by
    a process that no longer runs is cleared on the way)."""
    from core.training.run_folder import RunFolderBusy, acquire_run_folder

    if not run_dir.is_dir():
        return None
    try:
        acquire_run_folder(run_dir, resume=True, command="vae-explorer experiment (looking)").release()
    except RunFolderBusy as e:
        return f"being written by {e.holder.describe()}" if e.holder is not None else "being written by another process"
    except UserError:        # cannot tell (unreadable, read-only): the job will say what is wrong
        return None
    return None


def run_launched(spec: ExperimentSpec, out: Path, configs: dict[str, Config], launcher: Launcher, *,
                 stop: Callable[[], bool], poll_s: float = 0.5) -> Iterator[ExperimentProgress | ExperimentEnded]:
    """Every run of `spec` through `launcher` (see the module docstring)."""
    schedule = _Schedule(spec, out, configs, launcher)
    try:
        yield from schedule.skip_finished()
        while schedule.pending or schedule.active or schedule.followed:
            if stop() and not schedule.stopping:
                schedule.stop()
            yield from schedule.launch()
            yield from schedule.poll()
            yield from schedule.check_followed()
            if schedule.active or schedule.followed:
                time.sleep(poll_s)
    finally:
        launcher.close()
    yield schedule.ended()


class _Schedule:
    """Which runs wait, which run (and where), which another writer holds; the progress events of each."""

    def __init__(self, spec: ExperimentSpec, out: Path, configs: dict[str, Config], launcher: Launcher) -> None:
        self.spec, self.out, self.configs, self.launcher = spec, out, configs, launcher
        self.n = len(spec.runs)
        self.share = _TRAIN_SHARE if spec.evaluate else 1.0
        self.fractions = [0.0] * self.n
        self.pending: deque[tuple[int, RunSpec]] = deque()
        self.active: list[_Active] = []
        self.followed: dict[str, tuple[int, RunSpec]] = {}   # runs another writer holds: waited for, then launched
        self.failed: list[str] = []
        self.stopping = False

    def progress(self, i: int, run: str, stage: str, message: str = "", event: Any = None) -> ExperimentProgress:
        return ExperimentProgress(run, i, self.n, stage, sum(self.fractions) / self.n, message, event)

    def _done(self, i: int, name: str, note: str = "") -> Iterator[ExperimentProgress]:
        self.fractions[i] = 1.0
        yield self.progress(i, name, "done", f"{name}: done{note}")

    def skip_finished(self) -> Iterator[ExperimentProgress]:
        for i, run in enumerate(self.spec.runs):
            if _is_done(self.out / run.name, self.spec.evaluate, self.spec.sources):
                self.fractions[i] = 1.0
                yield self.progress(i, run.name, "skipped", f"{run.name}: already trained")
                yield from self._done(i, run.name)
            else:
                self.pending.append((i, run))

    def stop(self) -> None:
        self.stopping = True
        self.pending.clear()
        self.followed.clear()
        for a in self.active:
            request_stop(a.job)

    def launch(self) -> Iterator[ExperimentProgress]:
        room = self.launcher.slots or self.n     # 0: every run at once (the engine queues them)
        ready: list[tuple[_Active, str]] = []
        while self.pending and len(self.active) + len(ready) < room and not self.stopping:
            i, run = self.pending.popleft()
            holder = writer_elsewhere(self.out / run.name)
            if holder is not None:
                if run.name not in self.followed:
                    yield self.progress(i, run.name, "training", f"{run.name}: {holder}; waiting for it")
                self.followed[run.name] = (i, run)
                continue
            verb = "resuming" if (self.out / run.name / "checkpoints" / "last.safetensors").is_file() else "training"
            ready.append((_prepare(self.spec, self.out, self.configs[run.name], i, run), verb))
        if not ready:
            return
        # in one go: a Slurm launcher in array mode makes them one job array
        handles = self.launcher.submit_all([a.job for a, _ in ready])
        for (a, verb), handle in zip(ready, handles, strict=True):
            a.handle = handle
            self.active.append(a)
            yield self.progress(a.index, a.run.name, verb, f"{verb} {a.run.name} ({a.index + 1}/{self.n}) on "
                                                           f"{self.launcher.where(handle)}")

    def poll(self) -> Iterator[ExperimentProgress]:
        for a in list(self.active):
            outcome = self.launcher.poll(a.handle)     # first: once it has ended, its last lines are all there
            yield from self._follow(a)
            if outcome is None:
                continue
            self.active.remove(a)
            run_dir = self.out / a.run.name
            if outcome.status == "busy" and not self.stopping:    # taken by another writer since we looked
                self.followed[a.run.name] = (a.index, a.run)
                yield self.progress(a.index, a.run.name, "training", f"{a.run.name}: {outcome.message}; waiting")
            elif _is_done(run_dir, self.spec.evaluate, self.spec.sources):
                if self.spec.evaluate:
                    yield self.progress(a.index, a.run.name, "evaluated", f"{a.run.name}: evaluated")
                yield from self._done(a.index, a.run.name)
            elif not self.stopping:
                self.failed.append(a.run.name)
                status = run_status(run_dir)
                why = outcome.message or f"training {status or 'ended without a result'}"
                if outcome.status == "stopped" or status == "stopped":
                    why = (f"stopped by its launcher ({outcome.message or 'a signal or time limit'}); run the "
                           "experiment again to resume it")
                yield self.progress(a.index, a.run.name, "failed", f"{a.run.name}: {why}")

    def _follow(self, a: _Active) -> Iterator[ExperimentProgress]:
        from core.training.events import RunEnded, StepMetrics

        for ev in a.tail.read():
            if isinstance(ev, StepMetrics):
                a.done = ev.progress
            elif isinstance(ev, RunEnded) and ev.status in FINISHED:
                a.done = 1.0
            self.fractions[a.index] = self.share * a.done
            yield self.progress(a.index, a.run.name, "training", "", ev)
            if isinstance(ev, RunEnded) and ev.status in FINISHED and self.spec.evaluate and not a.evaluating:
                a.evaluating = True
                yield self.progress(a.index, a.run.name, "evaluating", f"evaluating {a.run.name}")

    def check_followed(self) -> Iterator[ExperimentProgress]:
        for name, (i, run) in list(self.followed.items()):
            if writer_elsewhere(self.out / name) is None:    # its writer let go: done, or ours to resume
                del self.followed[name]
                if _is_done(self.out / name, self.spec.evaluate, self.spec.sources):
                    yield from self._done(i, name, " (trained by another process)")
                else:
                    self.pending.appendleft((i, run))

    def ended(self) -> ExperimentEnded:
        if self.stopping:
            return ExperimentEnded("stopped", "stopped; run the experiment again to continue")
        if self.failed:
            return ExperimentEnded("failed", f"{len(self.failed)} of {self.n} runs failed: {', '.join(self.failed)}",
                                   tuple(self.failed))
        return ExperimentEnded("completed", f"{self.n} runs done")


def _prepare(spec: ExperimentSpec, out: Path, config: Config, i: int, run: RunSpec) -> _Active:
    """The run's job and the tail of its metrics, ready to submit (its handle comes with the submission)."""
    run_dir = (out / run.name).resolve()
    job_file, _, stop_file = launch_files(run_dir.parent, run.name)
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job = RunJob(run.name, str(run_dir), config.to_json(), spec.evaluate, spec.scale,
                 "ssim_explained" in spec.figures, stop_file=str(stop_file), sources=spec.sources,
                 prior_train_steps=spec.prior_train_steps)
    clear_stop_request(job)      # a request left by an earlier, stopped launch
    metrics = run_dir / "metrics.jsonl"
    offset = metrics.stat().st_size if metrics.is_file() else 0      # only this launch's records count
    return _Active(i, run, job, None, MetricsTail(metrics, offset))
