"""`vae-explorer report RUN [RUN ...] --out report.html`: one self-contained HTML file (curves, sample grids, the
metrics table, each config and the settings that differ) that opens in any browser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import PROG
from core.errors import UserError
from core.files import check_output_file, printable


def report_command(args: argparse.Namespace) -> int:
    from core.runs.history import read_run
    from core.runs.report import write_report

    runs = [Path(r) for r in args.runs]
    out = check_output_file(args.out, flag="--out", suffixes=(".html", ".htm"))
    for run in runs:
        if not run.exists():
            raise UserError(f"no such run folder: {printable(str(run))}")
    for run in runs:   # still in the report, with the reason
        summary = read_run(run)
        if summary.status == "unreadable":
            print(f"{PROG}: warning: {printable(str(run))}: {printable(summary.reason)}", file=sys.stderr)
    try:
        write_report(runs, out, title=args.title)
    except OSError as e:
        raise UserError(f"--out: cannot write {printable(str(out))} ({e.strerror or type(e).__name__})") from None
    print(f"wrote {printable(str(out))}")
    return 0
