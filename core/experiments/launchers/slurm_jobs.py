"""Each run a Slurm job through submitit (`vae-explorer[slurm]`): partition, time limit, CPUs and GPUs per run from
the flags; the jobs' own logs in OUT/.launch/submitit. `array=True` submits the runs as one Slurm job array
(submitit's `map_array`: one sbatch, one queue entry; `array_parallelism` caps how many of its tasks run at once).
`cluster="local"` runs the same submission with submitit's local executor (processes on this machine), to try it
where there is no Slurm. The experiment folder must be on a disk the nodes share; a job stopped by its time limit
saves its checkpoint (SIGTERM) and the next launch resumes it.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.experiments.launchers import missing_engine
from core.experiments.launchers.job import JobOutcome, RunJob, request_stop, run_job


class SlurmLauncher:
    name = "slurm"

    def __init__(self, folder: str | Path, *, partition: str | None = None, time_min: int = 60, cpus: float = 1.0,
                 gpus: float | None = None, cluster: str | None = None, slots: int = 0, array: bool = False,
                 array_parallelism: int | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise missing_engine("submitit", "slurm", "--launcher slurm") from None
        if cluster is None and shutil.which("sbatch") is None:
            raise UserError("--launcher slurm: Slurm is not available here (no sbatch); run on a Slurm login node, "
                            "or add --slurm-local to try the submission with submitit's local executor")
        self.submitit = submitit
        self.slots = slots
        self.cluster = cluster or "slurm"
        self.cpus = max(1, math.ceil(cpus))
        self.gpus = int(gpus or 0)
        self.executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": int(time_min), "cpus_per_task": self.cpus,
                                  "gpus_per_node": self.gpus, "name": "vae-explorer"}
        if partition:
            params["slurm_partition"] = partition
        if array_parallelism is not None:
            assert array, "array_parallelism is a setting of a job array (array=True)"
            assert array_parallelism >= 1, f"array_parallelism must be at least 1, not {array_parallelism}"
            params["slurm_array_parallelism"] = int(array_parallelism)    # (the local executor starts them all)
        self.array = array
        self.executor.update_parameters(**params)
        self._jobs: dict[Any, RunJob] = {}

    def submit(self, job: RunJob) -> Any:
        return self.submit_all([job])[0]

    def submit_all(self, jobs: list[RunJob]) -> list[Any]:
        """One job per run, or (array mode, more than one run) all of them as one job array."""
        jobs = [dataclasses.replace(job, threads=job.threads or self.cpus) for job in jobs]
        try:
            if self.array and len(jobs) > 1:
                handles = self.executor.map_array(run_job, jobs)
            else:
                handles = [self.executor.submit(run_job, job) for job in jobs]
        except (OSError, RuntimeError, self.submitit.core.utils.FailedSubmissionError) as e:
            names = ", ".join(job.name for job in jobs)
            raise UserError(f"cannot submit run{'s' if len(jobs) > 1 else ''} {names}: "
                            f"{str(e).strip().splitlines()[-1]}") from None
        self._jobs.update(zip(handles, jobs, strict=True))
        return handles

    def where(self, handle: Any) -> str:
        kind = ("Slurm" if self.cluster == "slurm" else "submitit local") + (" array" if self.array else "")
        return f"{kind} job {handle.job_id}"

    def poll(self, handle: Any) -> JobOutcome | None:
        if not handle.done():
            return None
        self._jobs.pop(handle, None)
        try:
            return handle.result()
        except Exception as e:  # noqa: BLE001 - submitit re-raises whatever ended the job (its failure, a time limit,
            # a node lost): each is this run's failure, reported with its last line, never the experiment's crash
            lines = [line for line in str(e).splitlines() if line.strip()]
            return JobOutcome("failed", f"its job {handle.job_id} failed: {lines[-1] if lines else type(e).__name__}"
                                        f" (logs: {handle.paths.stderr})")

    def close(self) -> None:
        """Ask the jobs still running to stop after their step (each saves its checkpoint); they end on their own."""
        for job in self._jobs.values():
            request_stop(job)
        self._jobs.clear()
