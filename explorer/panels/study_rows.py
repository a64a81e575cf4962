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
    directions: tuple[str, ...] = ()   # "maximize" / "minimize" per objective

    def row(self, number: int) -> TrialRow | None:
        return next((r for r in self.rows if r.number == number), None)

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows)


def storage_url(settings: Any, out: Path) -> str:
    """Where the study lives (core.experiments.search.open_study's default: OUT/study.db)."""
    return settings.storage or f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def read_study(settings: Any, out: str | Path) -> StudySnapshot:
    """The study's trials now, newest last."""
    return read_study_at(storage_url(settings, Path(out)), out)


def read_study_at(storage: str, out: str | Path) -> StudySnapshot:
    """The trials of the search study in `storage` (whoever runs it: this window, the CLI, other machines); its
    objectives are the ones it was made for. UserError when there is no search study there."""
    from core.errors import UserError
    from core.experiments.search import STUDY_NAME, best_trial_numbers, import_optuna

    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except (KeyError, ValueError, ImportError) as e:
        raise UserError(f"no settings search in {storage} ({str(e).splitlines()[0]}); choose the folder a search "
                        "wrote (it holds study.db)") from None
    objectives = tuple(study.user_attrs.get("objectives") or ("value",) * len(study.directions))
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
    return StudySnapshot(Path(out), objectives, tuple(rows), best_trial_numbers(study),
                         tuple(d.name.lower() for d in study.directions))


def read_study_folder(out: str | Path) -> StudySnapshot:
    """The search study of a folder (OUT/study.db), as `vae-explorer search --out OUT` writes it."""
    from core.errors import UserError

    db = Path(out) / "study.db"
    if not db.is_file():
        raise UserError(f"{out} holds no study.db; choose the folder a search wrote (its --out)")
    return read_study_at(f"sqlite:///{db.resolve()}", out)


def search_job(settings: Any, out: str, should_stop: Callable[[], bool]) -> Iterator[Any]:
    """Run the search (core.experiments.search.run_search) and yield its events, with a `StudySnapshot` after each
    one that starts or ends a trial, and at the end; then ("report", OUT/search-report.html) as the CLI writes it."""
    from core.experiments.search import SearchEnded, open_study, run_search
    from core.experiments.search_report import write_search_report

    for ev in run_search(settings, out, should_stop=should_stop):
        yield ev
        if isinstance(ev, SearchEnded) or ev.stage in _TRIAL_CHANGES:
            yield read_study(settings, out)
    yield ("report", write_search_report(open_study(settings, Path(out)), out))
