"""N runs at once on this machine, each in its own process (`python -m core.experiments.launchers.job`).

With GPUs, slot k sees one GPU (CUDA_VISIBLE_DEVICES; more slots than GPUs share them round-robin). Each process
gets an equal share of the CPU threads (torch.set_num_threads and OMP_NUM_THREADS), unless its run sets its own
`train.threads`. The processes are this one's children: each watches it and stops (with a checkpoint) when it is gone.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import UserError
from core.experiments.launchers.job import JobOutcome, RunJob

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
class _Process:
    proc: subprocess.Popen
    slot: int
    log: IO[str]
    log_path: Path
    where: str


class LocalLauncher:
    name = "local"

    def __init__(self, parallel: int, *, gpus: list[str] | None = None, cpus: int | None = None) -> None:
        if parallel < 1:
            raise UserError(f"--parallel needs 1 or more runs at once, not {parallel}")
        self.slots = parallel
        self.gpus = visible_gpus() if gpus is None else list(gpus)
        self.threads = max(1, (cpus or available_cpus()) // parallel)
        self._free = list(range(parallel))
        self._running: list[_Process] = []

    def submit(self, job: RunJob) -> _Process:
        from core.experiments.launchers.job import launch_files

        slot = self._free.pop(0)
        job = dataclasses.replace(job, threads=job.threads or self.threads, parent_pid=os.getpid())
        job_file, log_path, _ = launch_files(Path(job.run_dir).parent, job.name)
        job_file.parent.mkdir(parents=True, exist_ok=True)
        job_file.write_text(job.to_json(), encoding="utf-8")
        env = dict(os.environ, OMP_NUM_THREADS=str(job.threads), MKL_NUM_THREADS=str(job.threads))
        where = f"{job.threads} CPU thread{'s' if job.threads > 1 else ''}"
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
            where = f"GPU {env['CUDA_VISIBLE_DEVICES']}, {where}"
        # The package as this process imports it, whatever the child's working directory (a checkout or a wheel).
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        log = open(log_path, "a", encoding="utf-8")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "core.experiments.launchers.job", str(job_file)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError as e:
            log.close()
            self._free.insert(0, slot)
            raise UserError(f"cannot start a process for run {job.name} ({e.strerror or e})") from None
        handle = _Process(proc, slot, log, log_path, where)
        self._running.append(handle)
        return handle

    def where(self, handle: _Process) -> str:
        return handle.where

    def poll(self, handle: _Process) -> JobOutcome | None:
        code = handle.proc.poll()
        if code is None:
            return None
        self._release(handle)
        if code == 0:
            return JobOutcome("completed")
        lines = [line for line in handle.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
        status = {3: "stopped", 4: "busy"}.get(code, "failed")
        return JobOutcome(status, f"its process exited with {code}"
                          + (f": {lines[-1]}" if lines else "") + f" (log: {handle.log_path})")

    def _release(self, handle: _Process) -> None:
        handle.log.close()
        if handle in self._running:
            self._running.remove(handle)
            self._free.append(handle.slot)
            self._free.sort()

    def close(self) -> None:
        """SIGTERM to every process still running (each saves its checkpoint), then wait for them."""
        for handle in self._running:
            if handle.proc.poll() is None:
                handle.proc.terminate()
        for handle in list(self._running):
            try:
                handle.proc.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                handle.proc.kill()
                handle.proc.wait()
            self._release(handle)
