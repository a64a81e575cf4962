"""A settings search's trials as plain rows (Qt-free: read from the study's storage on a worker thread) and the job
that runs the search there, yielding the search's events and, whenever a trial starts or ends, a fresh `StudySnapshot`
(only copies cross to the GUI thread, never the study)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TRIAL_CHANGES = ("started", "complete", "pruned", "failed")


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str                      # running, complete, pruned, fail
    params: dict[str, Any]          # "section.field" -> value
    values: tuple[float, ...]       # the objectives' values (complete trials)
    duration_s: float | None
    run: str                        # its run folder's name (trial-NNNN)
    note: str = ""


@dataclass(frozen=True)
class StudySnapshot:
    folder: Path
    objectives: tuple[str, ...]
    rows: tuple[TrialRow, ...]
    best: tuple[int, ...]           # the best trial's number (one objective) or the Pareto front's

    def row(self, number: int) -> TrialRow | None:
        return next((r for r in self.rows if r.number == number), None)

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows)


def storage_url(settings: Any, out: Path) -> str:
    """Where the study lives (core.experiments.search.open_study's default: OUT/study.db)."""
    return settings.storage or f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def read_study(settings: Any, out: str | Path) -> StudySnapshot:
    """The study's trials now, newest last."""
    from core.experiments.search import STUDY_NAME, best_trial_numbers, import_optuna

    optuna = import_optuna()
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(settings, Path(out)))
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        state = t.state.name.lower()
        # Optuna gives a pruned trial its last reported value; only a complete trial has a value of the objective.
        values = tuple(float(v) for v in (t.values or ()) if v is not None and math.isfinite(v)) \
            if state == "complete" else ()
        seconds = t.duration.total_seconds() if t.duration is not None else None
        note = str(t.user_attrs.get("why") or ("the preset's settings" if t.user_attrs.get("preset") else ""))
        if state == "pruned" and t.intermediate_values:
            epoch = max(t.intermediate_values)
            note = f"pruned at epoch {epoch}: {t.intermediate_values[epoch]:.4g} was below the median"
        rows.append(TrialRow(t.number, state, dict(t.params), values, seconds,
                             str(t.user_attrs.get("run", "")), note))
    return StudySnapshot(Path(out), tuple(settings.objectives), tuple(rows), best_trial_numbers(study))


def search_job(settings: Any, out: str, should_stop: Callable[[], bool]) -> Iterator[Any]:
    """Run the search (core.experiments.search.run_search) and yield its events, with a `StudySnapshot` after each
    one that starts or ends a trial, and at the end."""
    from core.experiments.search import SearchEnded, run_search

    for ev in run_search(settings, out, should_stop=should_stop):
        yield ev
        if isinstance(ev, SearchEnded) or ev.stage in _TRIAL_CHANGES:
            yield read_study(settings, out)
