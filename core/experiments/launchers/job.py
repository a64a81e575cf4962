"""One run of an experiment as a job another process trains: `run_job(job)` trains the run into its folder (resuming
from checkpoints/last.safetensors when there is one, skipping training when it already ended "completed"), then
evaluates it (eval.json beside it), exactly as the experiment's own process would.

Every launcher runs this: the local one in its slot processes (`python -m core.experiments.launchers.job`, which
runs the jobs whose files it reads on stdin), Ray as a task, submitit as a Slurm job. The launch's own files (job,
outcome, logs, stop request) live in the experiment's `.launch/` folder, never in the run folder, which holds only
what its one writer, the Trainer, puts there.
The job stops after its current step, with a checkpoint, when
- its stop file appears (`stop_file`, beside the run folder: the driver asks, from any machine that sees the disk),
- it gets SIGTERM or SIGINT (Ctrl-C in the driver's terminal, Slurm's time limit), or
- its parent process goes away (`parent_pid`: a driver killed with kill -9 leaves no worker behind training on).
The next launch resumes from that checkpoint, so an interruption loses nothing and retrains nothing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LAUNCH_DIR = ".launch"            # in the experiment folder: <run>.json (the job), its .outcome.json, <run>.stop
_WATCH_S = 0.25


@dataclass(frozen=True)
class RunJob:
    name: str
    run_dir: str                  # absolute: the worker may run elsewhere (a shared disk)
    config_json: str              # the run's full Config as JSON
    evaluate: bool = True
    scale: str = "quick"          # evaluation effort (core.experiments.runner.eval_settings)
    study_ssim: bool = False
    stop_file: str = ""           # "stop after this step" when this file exists ("" = no stop file)
    threads: int = 0              # torch CPU threads when the run sets none (train.threads 0); 0 = torch's default
    parent_pid: int = 0           # stop when this process is gone; 0 = do not watch
    sources: tuple[str, ...] = ("prior",)   # where the evaluated samples' z come from (ExperimentSpec.sources)
    prior_train_steps: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunJob:
        fields = json.loads(text)
        if "sources" in fields:
            fields["sources"] = tuple(fields["sources"])
        return cls(**fields)


@dataclass(frozen=True)
class JobOutcome:
    status: str                   # the training's end status ("completed", "stopped", "failed", ...) or "busy"
    message: str = ""
    evaluated: bool = False


def launch_files(out: Path, run: str) -> tuple[Path, Path, Path]:
    """(job, log, stop file) of run `run` of the experiment in `out`."""
    folder = out / LAUNCH_DIR
    return folder / f"{run}.json", folder / f"{run}.log", folder / f"{run}.stop"


def request_stop(job: RunJob) -> None:
    """Ask the run's job (wherever it runs) to stop after its current step and save its checkpoint."""
    try:
        Path(job.stop_file).write_text("stop\n", encoding="utf-8")
    except OSError:
        pass       # the folder is gone or read-only: there is nothing to stop there either


def clear_stop_request(job: RunJob) -> None:
    try:
        Path(job.stop_file).unlink()
    except FileNotFoundError:
        pass


class _StopWatch:
    """Calls `stop()` once the run folder holds a stop request, the parent is gone, or a signal came."""

    def __init__(self, job: RunJob) -> None:
        self.job = job
        self.stopped = threading.Event()
        self._target: Any = None
        self._done = threading.Event()
        self._previous: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._watch, name="job-stop-watch", daemon=True)

    def start(self) -> _StopWatch:
        self._thread.start()
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, lambda *_: self.trigger())
                              for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def attach(self, trainer: Any) -> None:
        self._target = trainer
        if self.stopped.is_set():
            trainer.stop()

    def trigger(self) -> None:
        self.stopped.set()
        if self._target is not None:
            self._target.stop()

    def _watch(self) -> None:
        while not self._done.wait(_WATCH_S):
            orphaned = self.job.parent_pid and os.getppid() != self.job.parent_pid
            if orphaned or (self.job.stop_file and Path(self.job.stop_file).exists()):
                self.trigger()

    def close(self) -> None:
        self._done.set()
        for sig, handler in self._previous.items():     # between jobs a signal ends the (idle) process
            signal.signal(sig, handler)
        self._previous = {}


def run_job(job: RunJob) -> JobOutcome:
    """Train (or resume) and evaluate one run as the one writer of its folder; see the module docstring. Never raises
    for a failed run: the outcome says what happened (the run's metrics.jsonl has the details); "busy" when another
    process holds the run folder."""
    from core.training.run_folder import RunFolderBusy, acquire_run_folder

    run_dir = Path(job.run_dir)
    watch = _StopWatch(job).start()
    try:
        lock = acquire_run_folder(run_dir, resume=True, command=f"vae-explorer experiment, run {job.name}")
    except RunFolderBusy as e:        # another launch's job still writes it: the driver follows it instead
        watch.close()
        return JobOutcome("busy", str(e))
    try:
        return _train_and_evaluate(job, run_dir, watch)
    finally:
        lock.release()
        watch.close()


def _train_and_evaluate(job: RunJob, run_dir: Path, watch: _StopWatch) -> JobOutcome:
    import torch

    from core.config import Config
    from core.errors import UserError
    from core.experiments.runner import FINISHED, evaluate_run, evaluated, run_status
    from core.files import atomic_write_text
    from core.training.trainer import Trainer

    config = Config.from_json(job.config_json)
    threads = config.train.threads or job.threads     # a run's own setting wins over the launcher's share
    if threads > 0:
        torch.set_num_threads(threads)
    status = run_status(run_dir)
    if status not in FINISHED:
        last = run_dir / "checkpoints" / "last.safetensors"
        trainer = Trainer(config, run_dir=run_dir, resume=last if last.is_file() else None)
        watch.attach(trainer)
        status, reason = "failed", "ended without a result"
        for ev in trainer.run():
            if type(ev).__name__ == "RunEnded":
                status, reason = ev.status, ev.reason
        if status not in FINISHED:
            return JobOutcome(status, reason)
    if not job.evaluate or evaluated(run_dir, job.sources):
        return JobOutcome(status, "", job.evaluate)
    try:
        result = evaluate_run(run_dir, scale=job.scale, with_study_ssim=job.study_ssim,
                              should_stop=watch.stopped.is_set, sources=job.sources,
                              prior_train_steps=job.prior_train_steps)
    except UserError as e:
        return JobOutcome("failed", f"evaluation: {e}")
    if result is None:
        return JobOutcome("stopped", "stopped while evaluating")
    atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=2))
    return JobOutcome(status, "", True)


def outcome_file(job_file: Path) -> Path:
    return job_file.with_suffix(".outcome.json")


def serve(lines: Any = None) -> int:
    """`python -m core.experiments.launchers.job`: a local launcher's slot. Reads one job file path per line on stdin,
    runs the job and writes its outcome beside the job file (JOB.outcome.json); ends at the end of its input (the
    driver closed it, or is gone). One process runs many jobs, so torch is imported once per slot, not per run."""
    for line in lines if lines is not None else sys.stdin:
        job_file = Path(line.strip())
        if not line.strip():
            continue
        job = RunJob.from_json(job_file.read_text(encoding="utf-8"))
        outcome = run_job(job)
        if outcome.message:
            print(f"{job.name}: {outcome.status}: {outcome.message.splitlines()[0]}", file=sys.stderr, flush=True)
        from core.files import atomic_write_text

        atomic_write_text(outcome_file(job_file), json.dumps(asdict(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(serve())
