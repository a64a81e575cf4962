"""`vae-explorer runs [FOLDER ...] [--csv FILE]`: a table of run folders (status, epochs, best validation, headline
metrics), newest first; unreadable folders are rows with their reason.

Under it, when a listed run has been evaluated, the evaluation's headline numbers per run (Fréchet score, precision,
recall, conditional accuracy: what runs' samples are compared by) and the file they come from, read by the run
history's one reader (core.runs.evaluation.read_run_eval, as `--csv`, the report and the Runs tab read them). A table
of their own: beside the run table's columns they would make it ~160 characters wide; alone they fit in ~100. A
damaged evaluation file is "—" and its one-line reason in that run's row. `--csv` has every number."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.files import check_output_file, printable


def _headline(values: dict[str, float]) -> str:
    keys = ("elbo", "recon", "kl") if "elbo" in values else ("loss",)
    return " ".join(f"{k} {values[k]:.4g}" for k in keys if k in values)


def runs_command(args: argparse.Namespace) -> int:
    from core.paths import runs_dir
    from core.runs.history import find_runs, is_run_folder

    folders = [Path(f) for f in args.folders] or [runs_dir()]
    if args.csv:   # before reading any run: a bad output name is said at once
        check_output_file(args.csv, flag="--csv", suffixes=(".csv",))
    for folder in folders:
        if not folder.exists():
            raise UserError(f"no such folder: {printable(str(folder))}")
        if not folder.is_dir():
            raise UserError(f"{printable(str(folder))} is a file; give a run folder or a folder of runs")
    runs = find_runs(folders)
    # A folder named on the command line that is neither a run nor holds one is said to be so, as a row.
    listed = {r.path.resolve() for r in runs} | {r.path.resolve().parent for r in runs}
    if args.folders:
        from core.runs.history import read_run

        runs += [read_run(f) for f in folders if f.resolve() not in listed and not is_run_folder(f)]
    if not runs:
        print(f"no runs in {printable(', '.join(str(f) for f in folders))}")
    else:
        print(_table(runs))
        evaluations = _eval_table(runs)
        if evaluations:
            print(f"\n{evaluations}")
    if args.csv:
        from core.runs.export import write_runs_csv

        try:
            write_runs_csv(runs, args.csv)
        except OSError as e:
            raise UserError(f"--csv: cannot write {printable(args.csv)} ({e.strerror or type(e).__name__})") from None
        print(f"wrote {printable(args.csv)}")
    return 0


def _when(seconds: float | None) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds is not None else ""
    except (OverflowError, OSError, ValueError):   # a time no calendar holds (a damaged record)
        return ""


def _table(runs) -> str:
    """One row per run; every cell made printable (a run's name, dataset or reason comes from files anyone may have
    written: no escape sequence reaches the terminal)."""
    header = ("run", "status", "kind", "dataset", "subset", "epochs", "best val", "started", "headline / reason")
    rows = []
    for r in runs:
        best = f"{r.best_val:.4g}" if r.best_val is not None else ""
        epochs = f"{r.epochs_done}/{r.epochs_total}" if r.epochs_total else str(r.epochs_done)
        last = r.reason if r.status == "unreadable" else _headline(r.headline)
        if r.status != "unreadable" and r.damaged:
            last = f"{last}  ({r.damaged} damaged line(s) of metrics.jsonl skipped)".strip()
        rows.append(tuple(printable(str(c))[:200] for c in (r.name, r.status, r.kind or "", r.dataset or "",
                                                            r.subset or "all", epochs, best, _when(r.started), last)))
    return _aligned(header, rows)


def _aligned(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, the last one left free (a reason, a file name)."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in (header, *rows)]
    return "\n".join(line.rstrip() for line in lines)


# (eval.json key, column): the evaluation's headline numbers, as issue 24's "done when" compares runs and samplers.
EVAL_COLUMNS = (("fid_like", "Fréchet"), ("precision", "prec"), ("recall", "recall"), ("conditional_accuracy", "acc"))
NONE = "—"


def _eval_cells(numbers: dict[str, float]) -> tuple[str, ...]:
    from core.runs.evaluation import EVAL_METRICS

    labels = dict(EVAL_METRICS)
    values = [numbers.get(labels[key]) for key, _ in EVAL_COLUMNS]
    return tuple(NONE if v is None else f"{v:.4g}" if key == "fid_like" else f"{v:.3f}"
                 for (key, _), v in zip(EVAL_COLUMNS, values, strict=True))


def _said(result: dict[str, Any], key: str, default: str) -> str:
    value = result.get(key)
    return value if isinstance(value, str) and value else default


def _eval_table(runs) -> str:
    """Per run (in the run table's order): the evaluation's Fréchet score, precision, recall and conditional accuracy
    ("—" where it has none) and the file they come from; its split and source of z said once under the table when
    every run's agree, else beside the file. A damaged file: its one-line reason instead of the file. "" when no
    listed run has an evaluation file."""
    from core.runs.evaluation import eval_numbers, read_run_eval

    evals = [read_run_eval(r.path) for r in runs]
    if not any(e.result is not None or e.problem for e in evals):
        return ""
    read = [e.result for e in evals if e.result is not None]
    splits = {_said(result, "split", "unnamed") for result in read}
    sources = {_said(result, "samples_from", "prior") for result in read}
    rows = []
    for r, e in zip(runs, evals, strict=True):
        where = e.source.relative_to(r.path).as_posix() if e.source is not None else ""
        if e.result is not None and len(splits) > 1:
            where += f" ({_said(e.result, 'split', 'unnamed')} split)"
        if e.result is not None and len(sources) > 1:
            where += f" (z from {_said(e.result, 'samples_from', 'prior')})"
        if e.problem:   # a damaged file: said once, here; a damaged saved one beside an older one read
            where = f"{where}; {e.problem}" if where else e.problem
        rows.append(tuple(printable(c)[:200] for c in (r.name, *_eval_cells(eval_numbers(e.result)), where)))
    common = [*([f"{splits.pop()} split"] if len(splits) == 1 else []),
              *([f"z drawn from: {sources.pop()}"] if len(sources) == 1 else [])]
    said = "; ".join([*(printable(c)[:200] for c in common), f"{NONE}: none", "every number: --csv FILE"])
    legend = ("Fréchet score, prec(ision) and recall of the samples in the judge classifier's features; acc: their "
              f"conditional accuracy\n{said}")
    return _aligned(("evaluation", *(name for _, name in EVAL_COLUMNS), "from"), rows) + "\n" + legend
