"""N runs at once on this machine: N slot processes (`python -m core.experiments.launchers.job`), each running one
run after another as the driver hands them over, so torch and the data load once per slot rather than once per run
(~4 s of CPU each on a laptop).

With GPUs, slot k sees one GPU (CUDA_VISIBLE_DEVICES; more slots than GPUs share them round-robin). Each slot gets an
equal share of the CPU threads (torch.set_num_threads and OMP_NUM_THREADS), unless a run sets its own
`train.threads`. The slots are this process's children: a job stops (with a checkpoint) when its driver is gone, and
an idle slot ends when its input closes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import UserError
from core.experiments.launchers.job import JobOutcome, RunJob, launch_files, outcome_file

_STOP_WAIT_S = 120.0     # a stopping run saves a checkpoint first


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (its own list when set, else 0..n-1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:    # not Linux
        return os.cpu_count() or 1


@dataclass
class _Slot:
    proc: subprocess.Popen
    log: IO[str]
    log_path: Path
    where: str


@dataclass
class _Handle:
    slot: int
    job: RunJob
    outcome: Path


class LocalLauncher:
    name = "local"

    def __init__(self, parallel: int, *, gpus: list[str] | None = None, cpus: int | None = None) -> None:
        if parallel < 1:
            raise UserError(f"--parallel needs 1 or more runs at once, not {parallel}")
        self.slots = parallel
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.threads = max(1, (cpus or available_cpus()) // parallel)
        self._free = list(range(parallel))
        self._procs: dict[int, _Slot] = {}
        self._running: dict[int, _Handle] = {}

    def _slot(self, k: int, launch_dir: Path) -> _Slot:
        slot = self._procs.get(k)
        if slot is not None and slot.proc.poll() is None:
            return slot
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        where = f"{self.threads} CPU thread{'s' if self.threads > 1 else ''}"
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[k % len(self.gpus)]
            where = f"GPU {env['CUDA_VISIBLE_DEVICES']}, {where}"
        # The package as this process imports it, whatever the child's working directory (a checkout or a wheel).
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        log_path = launch_dir / f"slot-{k}.log"
        log = open(log_path, "a", encoding="utf-8")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "core.experiments.launchers.job"], stdin=subprocess.PIPE,
                                    stdout=log, stderr=subprocess.STDOUT, env=env, text=True)
        except OSError as e:
            log.close()
            raise UserError(f"cannot start a process for the runs ({e.strerror or e})") from None
        self._procs[k] = slot = _Slot(proc, log, log_path, where)
        return slot

    def submit(self, job: RunJob) -> _Handle:
        k = self._free.pop(0)
        job = dataclasses.replace(job, threads=job.threads or self.threads, parent_pid=os.getpid())
        job_file = launch_files(Path(job.run_dir).parent, job.name)[0]
        job_file.parent.mkdir(parents=True, exist_ok=True)
        outcome = outcome_file(job_file)
        outcome.unlink(missing_ok=True)
        job_file.write_text(job.to_json(), encoding="utf-8")
        try:
            slot = self._slot(k, job_file.parent)
            slot.proc.stdin.write(f"{job_file}\n")
            slot.proc.stdin.flush()
        except (UserError, OSError):
            self._free.insert(0, k)
            raise
        handle = _Handle(k, job, outcome)
        self._running[k] = handle
        return handle

    def submit_all(self, jobs: list[RunJob]) -> list[_Handle]:
        return [self.submit(job) for job in jobs]

    def where(self, handle: _Handle) -> str:
        return self._procs[handle.slot].where

    def poll(self, handle: _Handle) -> JobOutcome | None:
        slot = self._procs[handle.slot]
        if handle.outcome.is_file():
            self._release(handle)
            try:
                return JobOutcome(**json.loads(handle.outcome.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                return JobOutcome("failed", f"its outcome {handle.outcome} cannot be read")
        code = slot.proc.poll()
        if code is None:
            return None
        if handle.outcome.is_file():     # written just before its process ended
            return self.poll(handle)
        self._release(handle)
        slot.log.close()
        lines = [line for line in slot.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
        return JobOutcome("failed", f"its process exited with {code}" + (f": {lines[-1]}" if lines else "")
                          + f" (log: {slot.log_path})")

    def _release(self, handle: _Handle) -> None:
        if self._running.pop(handle.slot, None) is not None:
            self._free.append(handle.slot)
            self._free.sort()

    def close(self) -> None:
        """End the slots: an idle one when its input closes; one still training gets SIGTERM first (its job stops
        after the step and saves its checkpoint)."""
        for k, slot in self._procs.items():
            if slot.proc.poll() is None and k in self._running:
                slot.proc.terminate()
            try:
                slot.proc.stdin.close()
            except OSError:
                pass
        for slot in self._procs.values():
            try:
                slot.proc.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()
            slot.log.close()
        self._procs.clear()
        self._running.clear()
