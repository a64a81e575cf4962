"""Runs as CSV: one row per run (a comparison's table), and every run's curves in long format (one row per point).

Both are written atomically and read back with the `csv` module as they were written: numbers are written with
`repr` (they round-trip exactly), missing values are empty cells, list settings are JSON (e.g. `["0", "1"]`). A run's
start and last update are written twice: epoch seconds (exact) and UTC text (what a spreadsheet shows as a time).
A run's evaluation is read by the run history's one reader (core.runs.evaluation.read_run_eval): an evaluation file
that is there but could not be read leaves the `eval: ...` cells empty and says why in `eval_problem` (one line), so
a damaged file never reads as "not evaluated".
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.files import atomic_write, check_output_file, run_folder_holding
from core.runs.evaluation import eval_numbers, read_run_eval
from core.runs.history import RunSummary, config_diff, load_series

RUN_COLUMNS = ("name", "status", "kind", "dataset", "subset", "epochs_done", "epochs_total", "step", "best_val",
               "started", "updated", "started_utc", "updated_utc", "path", "reason", "damaged", "tags", "note",
               "eval_problem")
SERIES_COLUMNS = ("run", "series", "step", "epoch", "time", "value")


# A cell a spreadsheet would run as a formula (OWASP, "CSV Injection"): text starting with one of these, including their
# full-width forms, which some spreadsheets read the same.
_FORMULA_START = tuple("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")


def cell(value: Any) -> str:
    """One CSV cell: "" for missing or NaN, repr for numbers, JSON for lists and dicts. Text (a run's name, its
    reason, a setting's value: all from files anyone may have written) that a spreadsheet would run as a formula is
    neutralised the way OWASP advises, with a leading apostrophe; numbers are written as numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def utc_text(seconds: float | None) -> str | None:
    """Epoch seconds as a spreadsheet reads them: "2026-12-04 21:55:03Z" (UTC); None when there is no such time."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else None
    except (OverflowError, OSError, ValueError):   # a time no calendar holds (a damaged record)
        return None


def check_export_file(path: str | Path, *, what: str, suffixes: Sequence[str]) -> Path:
    """`path` when an export (the GUI's CSV or report) may write there: `core.files.check_output_file`, the CLI's
    guard, with one change of order: a run's own record (its metrics.jsonl, config.json, anything in checkpoints/ or
    samples/) is refused as such first, since "would overwrite the records of the run folder" says more than "the name
    must end in .csv". A UserError (one line) otherwise."""
    path = Path(path)
    if run_folder_holding(path) is not None:   # the records guard speaks (the name's own suffix passes its first check)
        check_output_file(path, flag=what, suffixes=(path.suffix.lower(),))
    return check_output_file(path, flag=what, suffixes=tuple(suffixes))


def _write_rows(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([cell(v) for v in row] for row in rows)

    return atomic_write(path, write)


def runs_table(summaries: Sequence[RunSummary]) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of the runs table: the summary's fields, each headline metric ("val elbo" ...), each
    number of the run's evaluation ("eval: test ELBO", "eval: recall, z from density" ...: its eval.json, else its
    newest saved test-split `eval --save`; `eval_problem`: why an evaluation file that is there was not read) and each
    setting that differs between the runs."""
    metrics: list[str] = []
    for s in summaries:
        metrics += [k for k in s.headline if k not in metrics]
    reads = [read_run_eval(s.path) for s in summaries]
    evaluations = [eval_numbers(r.result) for r in reads]
    evaluated: list[str] = []
    for numbers in evaluations:
        evaluated += [k for k in numbers if k not in evaluated]
    diff = config_diff(summaries)
    header = [*RUN_COLUMNS, *(f"val {k}" for k in metrics), *(f"eval: {k}" for k in evaluated), *diff]
    rows = []
    for i, s in enumerate(summaries):
        rows.append([s.name, s.status, s.kind, s.dataset, s.subset, s.epochs_done, s.epochs_total, s.step,
                     s.best_val, s.started, s.updated, utc_text(s.started), utc_text(s.updated), str(s.path),
                     s.reason, s.damaged, list(s.tags), s.note, reads[i].problem,
                     *(s.headline.get(k) for k in metrics), *(evaluations[i].get(k) for k in evaluated),
                     *(values[i] for values in diff.values())])
    return header, rows


def write_runs_csv(summaries: Sequence[RunSummary], path: str | Path) -> Path:
    """One row per run: name, status, kind, dataset, subset, epochs, best validation, the headline metrics, the
    evaluation's numbers and the settings that differ between the runs as columns."""
    header, rows = runs_table(summaries)
    return _write_rows(path, header, rows)


def write_series_csv(paths: Sequence[str | Path], path: str | Path) -> Path:
    """Every curve of each run in long format: run, series, step, epoch, time, value (one row per point)."""
    rows = []
    for run in paths:
        name = Path(run).name
        for series_name, s in load_series(run).items():
            rows += [[name, series_name, int(st), int(ep), float(t), float(v)]
                     for st, ep, t, v in zip(s.step, s.epoch, s.time, s.value, strict=True)]
    return _write_rows(path, SERIES_COLUMNS, rows)
