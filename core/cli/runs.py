"""`vae-explorer runs [FOLDER ...] [--csv FILE]`: a table of run folders (status, epochs, best validation, headline
metrics), newest first; unreadable folders are rows with their reason."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in (header, *rows)]
    return "\n".join(line.rstrip() for line in lines)
