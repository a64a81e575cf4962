"""What an experiment folder holds right now, as rows for the live table (Qt-free: read on a worker thread).

An experiment folder OUT holds one ordinary run folder per run (OUT/<run>: config.json, metrics.jsonl, eval.json once
evaluated), whoever trains them: this window, `vae-explorer experiment` in a terminal, `--parallel` slot processes,
Ray tasks or Slurm jobs on other machines. `ExperimentReader.read(OUT, names)` summarises each run (core.runs.history,
which never raises for a damaged folder) with the report's columns from its eval.json, so the table and the scatter
fill in as runs finish, wherever they run. A run whose files have not changed since the last read is not read again.
eval.json is read by the run history's one reader (core.experiments.report.read_experiment_eval, as the report): one
that is there but could not be read gives the row its one-line reason (`eval_problem`), never "not evaluated" alone.

`TimeLeft` estimates the time the rest of the experiment takes from the finished runs' own durations (see there).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.runs.evaluation import RunEval

# The report's columns (core.experiments.report): eval.json key -> header
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kl", "KL (rate)"), ("recon", "reconstruction"), ("elbo", "ELBO"), ("active_units", "active units"),
    ("conditional_accuracy", "conditional accuracy"), ("fid_like", "Fréchet score"), ("precision", "precision"),
    ("recall", "recall"), ("sharpness", "sharpness"), ("hole_score", "hole score"), ("ssim", "SSIM (reconstructions)"),
)
# The sample metrics of the other sources of z an experiment judged (`experiment --from density,diffusion-prior`):
# eval.json's "density_fid_like" ... -> "Fréchet score, z from density" (core.experiments.report.SOURCE_COLUMNS).
SOURCE_METRICS: tuple[tuple[str, str], ...] = (
    ("conditional_accuracy", "conditional accuracy"), ("fid_like", "Fréchet score"), ("precision", "precision"),
    ("recall", "recall"), ("hole_score", "hole score"),
)
FINISHED = ("done", "trained")
_LAUNCH_DIR = ".launch"       # core.experiments.launchers.job.LAUNCH_DIR: <run>.json per launched run


@dataclass(frozen=True)
class RunRow:
    name: str
    status: str                     # waiting, training, trained (not evaluated yet), done, stopped, failed, unfinished
    settings: dict[str, Any]        # the settings that differ between the experiment's runs ("section.field")
    metrics: dict[str, float]       # the report's numbers, from eval.json
    started: float | None = None    # epoch seconds: its first record
    duration_s: float | None = None  # first record to its eval.json (or its end record): training and evaluation
    progress: float = 0.0           # of its training, by epochs (0..1)
    note: str = ""
    eval_problem: str = ""          # why its eval.json, which is there, could not be read (one line); "" if nothing


@dataclass(frozen=True)
class ExperimentSnapshot:
    folder: Path
    rows: tuple[RunRow, ...]
    setting_keys: tuple[str, ...]
    read_at: float = field(default_factory=time.time)
    # eval.json key -> header of every metric column: METRIC_COLUMNS, then those of the other sources of z judged
    metric_columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.rows)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def run_names_in(folder: Path) -> list[str]:
    """The runs of an experiment folder started by anyone: its run folders, and the runs its launchers were given
    (OUT/.launch/<run>.json) that have no folder yet."""
    from core.runs.history import is_run_folder

    names: list[str] = []
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                       and is_run_folder(p))
        launched = sorted(p.name[:-len(".json")] for p in (folder / _LAUNCH_DIR).glob("*.json")
                          if not p.name.endswith((".outcome.json", ".config.json")))
    except OSError:
        return names
    return names + [n for n in launched if n not in names]


class ExperimentReader:
    """Reads an experiment folder's runs, re-reading only the runs whose files changed since the last read."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[Any, ...], Any, RunEval | None]] = {}

    def read(self, folder: str | Path, planned: dict[str, dict[str, Any]] | None = None) -> ExperimentSnapshot:
        """The runs of the folder: those `planned` (run name -> its settings delta, in order; a run without a
        folder yet waits, showing its planned settings), or every run it holds when None."""
        from core.runs.history import config_diff

        folder = Path(folder)
        names = run_names_in(folder) if planned is None else list(planned)
        read = [self._run(folder / n) for n in names]
        present = [s for s, _ in read if s is not None]
        keys = list(config_diff(present)) if len(present) > 1 else []
        for delta in (planned or {}).values():      # what the experiment varies, before its runs have folders
            keys += [k for k, v in delta.items() if k not in keys
                     and any(d.get(k) != v for d in (planned or {}).values())]
        columns = metric_columns([evaluation.result for _, evaluation in read if evaluation is not None])
        rows = [_row(name, summary, evaluation, tuple(keys), (planned or {}).get(name, {}), columns)
                for name, (summary, evaluation) in zip(names, read, strict=True)]
        return ExperimentSnapshot(folder, tuple(rows), tuple(keys), metric_columns=columns)

    def _run(self, run_dir: Path) -> tuple[Any, RunEval | None]:
        from core.experiments.report import read_experiment_eval
        from core.runs.history import read_run

        stamp = tuple(_stamp(run_dir / f) for f in ("metrics.jsonl", "config.json", "eval.json"))
        if stamp == (None, None, None):
            return None, None
        cached = self._cache.get(run_dir)
        # A running run is re-read while it runs: "running" depends on the clock as well as its files.
        if cached is not None and cached[0] == stamp and cached[1].status != "running":
            return cached[1], cached[2]
        summary, evaluation = read_run(run_dir), read_experiment_eval(run_dir)
        self._cache[run_dir] = (stamp, summary, evaluation)
        return summary, evaluation


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime, st.st_size


def metric_columns(evaluations: list[dict[str, Any] | None]) -> tuple[tuple[str, str], ...]:
    """METRIC_COLUMNS, then a column per sample metric of each other source of z some run was judged with, sources
    in the order they first appear ("density_fid_like" names the source "density")."""
    sources: list[str] = []
    for result in evaluations:
        sources += [k[:-len("_fid_like")] for k in (result or {}) if k.endswith("_fid_like") and k != "fid_like"
                    and k[:-len("_fid_like")] not in sources]
    return METRIC_COLUMNS + tuple((f"{source}_{key}", f"{header}, z from {source}") for source in sources
                                  for key, header in SOURCE_METRICS)


def _row(name: str, summary: Any, read: RunEval | None, keys: tuple[str, ...],
         planned: dict[str, Any], columns: tuple[tuple[str, str], ...] = METRIC_COLUMNS) -> RunRow:
    from core.files import printable
    from core.runs.history import flatten_config

    if summary is None:
        return RunRow(name, "waiting", {k: planned[k] for k in keys if k in planned}, {})
    evaluation = read.result if read is not None else None
    flat = flatten_config(summary.config)
    settings = {k: flat.get(k) for k in keys}
    metrics = {k: v for k, v in ((k, _number((evaluation or {}).get(k))) for k, _ in columns) if v is not None}
    status = {"completed": "trained", "early_stopped": "trained", "running": "training"}.get(summary.status,
                                                                                              summary.status)
    end = summary.updated
    evaluated = _stamp(summary.path / "eval.json")
    if evaluation is not None and status == "trained":
        status = "done"
        end = evaluated[0] if evaluated is not None else end
    duration = end - summary.started if status in FINISHED and end and summary.started else None
    total = summary.epochs_total or 0
    progress = 1.0 if status in FINISHED else (min(1.0, summary.epochs_done / total) if total else 0.0)
    return RunRow(name, status, settings, metrics, summary.started, duration, progress,
                  summary.reason if status in ("failed", "stopped", "unreadable", "unfinished") else "",
                  printable(read.problem)[:200] if read is not None and read.problem else "")


class TimeLeft:
    """The time the rest of an experiment takes, from the finished runs' durations.

    per_run = the median wall time of the finished runs (first record to eval.json: training and evaluation; a median,
    so one resumed or unusual run does not swing it). Before any run has finished it is the running runs' elapsed
    time over their training progress, once they are 10% in ("estimating" before that).
    left = (waiting runs x per_run + for each running run max(0, per_run - its elapsed time)) / runs at once.

    So the estimate only changes its rate when a run finishes (a new median) and otherwise counts down with the clock,
    instead of extrapolating the overall fraction done, which jumped as runs moved between training and evaluation
    (18 min -> 2 min -> 10 min on one sweep)."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = max(1, slots)

    def per_run(self, rows: tuple[RunRow, ...], now: float, progress: dict[str, float] | None = None) -> float | None:
        finished = [r.duration_s for r in rows if r.status in FINISHED and r.duration_s and r.duration_s > 0]
        if finished:
            return float(statistics.median(finished))
        guesses = []
        for r in rows:
            done = (progress or {}).get(r.name, r.progress)
            if r.status == "training" and r.started is not None and done >= 0.1:
                guesses.append((now - r.started) / done)
        return float(statistics.median(guesses)) if guesses else None

    def seconds(self, rows: tuple[RunRow, ...], now: float | None = None,
                progress: dict[str, float] | None = None) -> float | None:
        """Seconds left (None: too early to tell; 0: nothing left)."""
        now = time.time() if now is None else now
        waiting = sum(r.status == "waiting" for r in rows)
        running = [r for r in rows if r.status == "training"]
        if not waiting and not running:
            return 0.0
        per_run = self.per_run(rows, now, progress)
        if per_run is None:
            return None
        left = waiting * per_run + sum(max(0.0, per_run - (now - (r.started or now))) for r in running)
        return left / min(self.slots, max(1, waiting + len(running)))


def describe_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "time left: estimating (after the first run's first tenth)"
    if seconds < 1:
        return "time left: finishing"
    if seconds < 90:
        return f"time left: about {max(1, round(seconds))} s"
    if seconds < 5400:
        return f"time left: about {round(seconds / 60)} min"
    return f"time left: about {seconds / 3600:.1f} h"
