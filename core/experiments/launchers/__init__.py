"""Launchers: where an experiment's runs train when they do not train one after another in its own process.

- `local`: N runs at once on this machine, each its own process (one visible GPU per run through
  CUDA_VISIBLE_DEVICES, or an equal share of the CPU threads);
- `ray`: each run a Ray core task with its own `num_cpus` / `num_gpus` (an existing cluster by `address`, else a
  local Ray instance); needs the `vae-explorer[ray]` extra;
- `slurm`: each run a Slurm job through submitit (partition, time limit, GPUs), or all of them one job array;
  needs `vae-explorer[slurm]`.

Every launcher runs the same job (`job.run_job`: train or resume, then evaluate) into the same ordinary run folders,
and the experiment's process follows each run's metrics.jsonl for progress (`schedule.run_launched`). A launcher is
anything with the small `Launcher` interface below; the engines are imported only when chosen.
"""

from __future__ import annotations

from typing import Any, Protocol

from core.errors import UserError
from core.experiments.launchers.job import JobOutcome, RunJob

LAUNCHERS = ("local", "ray", "slurm")


class Launcher(Protocol):
    name: str
    slots: int          # runs given to it at once; 0: all of them (the engine queues what its resources cannot hold)

    def submit(self, job: RunJob) -> Any:
        """Start the job; a handle for `poll`."""

    def submit_all(self, jobs: list[RunJob]) -> list[Any]:
        """Start the jobs the schedule has room for, in one go (a Slurm job array), or one `submit` each."""

    def where(self, handle: Any) -> str:
        """Where the job runs, for the progress line ("GPU 1", "2 CPU threads", "Slurm job 1234")."""

    def poll(self, handle: Any) -> JobOutcome | None:
        """None while the job runs; its outcome once it has ended (the run folder says the rest)."""

    def close(self) -> None:
        """Stop what is still running (each job saves its checkpoint) and release the engine."""


def missing_engine(package: str, extra: str, flag: str) -> UserError:
    return UserError(f"{flag} needs {package}, which is not installed; install it with: "
                     f"pip install 'vae-explorer[{extra}]'")


def make_launcher(name: str, *, parallel: int = 0, address: str | None = None, cpus_per_run: float = 1.0,
                  gpus_per_run: float | None = None, partition: str | None = None, time_min: int = 60,
                  slurm_cluster: str | None = None, slurm_array: bool = False,
                  slurm_array_parallelism: int | None = None, folder: Any = None) -> Launcher:
    """The launcher `name` with its settings (UserError for an unknown name or a missing engine)."""
    if name == "local":
        from core.experiments.launchers.local import LocalLauncher

        return LocalLauncher(parallel or 1)
    if name == "ray":
        from core.experiments.launchers.ray_tasks import RayLauncher

        return RayLauncher(address=address, num_cpus=cpus_per_run, num_gpus=gpus_per_run, slots=parallel)
    if name == "slurm":
        from core.experiments.launchers.slurm_jobs import SlurmLauncher

        return SlurmLauncher(folder, partition=partition, time_min=time_min, cpus=cpus_per_run, gpus=gpus_per_run,
                             cluster=slurm_cluster, slots=parallel, array=slurm_array,
                             array_parallelism=slurm_array_parallelism)
    raise UserError(f"unknown launcher {name!r}; choose one of: {', '.join(LAUNCHERS)}")


__all__ = ["LAUNCHERS", "JobOutcome", "Launcher", "RunJob", "make_launcher", "missing_engine"]
