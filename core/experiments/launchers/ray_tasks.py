"""Each run a Ray core task (`vae-explorer[ray]`): `num_cpus` / `num_gpus` per run, on the cluster at `address`
(`ray://...` or `HOST:PORT`; "auto" for the one this machine belongs to) or on a local Ray instance started here and
shut down at the end. Ray gives each task its GPUs (CUDA_VISIBLE_DEVICES) and queues the tasks its resources cannot
hold yet. On a cluster every node needs this package installed and the experiment folder on a shared disk.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.experiments.launchers import missing_engine
from core.experiments.launchers.job import JobOutcome, RunJob, request_stop, run_job

_STOP_WAIT_S = 120.0


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class RayLauncher:
    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: float = 1.0, num_gpus: float | None = None,
                 slots: int = 0, local_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise missing_engine("Ray", "ray", "--launcher ray") from None
        if num_cpus <= 0 or (num_gpus is not None and num_gpus < 0):
            raise UserError(f"--cpus-per-run must be above 0 and --gpus-per-run 0 or more, not {num_cpus} and "
                            f"{num_gpus}")
        self.ray = ray
        self.slots = slots
        self._started = not ray.is_initialized()
        if self._started:
            # A local instance: its workers import this package from where this process does.
            root = str(Path(__file__).resolve().parents[3])
            options: dict[str, Any] = ({"address": address} if address else
                                       {"num_cpus": local_cpus, "runtime_env": {"env_vars": {"PYTHONPATH": root}}})
            try:
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **options)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"cannot reach the Ray cluster at {address}: {_first_line(e)}" if address else
                                f"cannot start a local Ray instance: {_first_line(e)}") from None
        if num_gpus is None:     # a run per GPU where the cluster has GPUs
            num_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(run_job)
        self._jobs: dict[Any, RunJob] = {}

    def submit(self, job: RunJob) -> Any:
        job = dataclasses.replace(job, threads=job.threads or max(1, math.floor(self.num_cpus)))
        ref = self._task.remote(job)
        self._jobs[ref] = job
        return ref

    def submit_all(self, jobs: list[RunJob]) -> list[Any]:
        return [self.submit(job) for job in jobs]

    def where(self, handle: Any) -> str:
        gpus = f", {self.num_gpus:g} GPU" if self.num_gpus else ""
        return f"a Ray task ({self.num_cpus:g} CPU{gpus})"

    def poll(self, handle: Any) -> JobOutcome | None:
        ready, _ = self.ray.wait([handle], timeout=0)
        if not ready:
            return None
        self._jobs.pop(handle, None)
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as e:
            return JobOutcome("failed", f"its Ray task failed: {_first_line(e)}")

    def close(self) -> None:
        """Ask the tasks still running to stop (each saves its checkpoint), wait for them, and shut down a local
        instance started here."""
        try:
            for job in self._jobs.values():
                request_stop(job)
            if self._jobs:
                self.ray.wait(list(self._jobs), num_returns=len(self._jobs), timeout=_STOP_WAIT_S)
            self._jobs.clear()
        finally:
            if self._started and self.ray.is_initialized():
                self.ray.shutdown()
