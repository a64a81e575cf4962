"""The Runs tab's comparison of the selected runs: their curves (runs_curves.py), the settings that differ, their
newest sample grids side by side, their metrics (and each run's eval.json) in one table. A run whose evaluation file
is there but damaged says so in the table's "test: evaluation" row ("damaged"; its tooltip: the one-line reason), so it
never looks like a run that was not evaluated.

Everything shown here was read on a worker (`read_compared`): curves, evaluations and the sample PNGs' bytes (with a
size cap, regular files only), so a huge or odd file in a run folder never stalls the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.files import printable
from core.runs.evaluation import RunEval
from core.runs.history import RunSummary, Series
from explorer.panels.runs_curves import CompareCurves

MAX_SAMPLE_BYTES = 32 << 20     # a sample grid is a few hundred kB


@dataclass
class Compared:
    """What a comparison shows, read on a worker."""

    series: dict[Path, dict[str, Series]]
    evals: dict[Path, dict[str, float]]
    eval_files: dict[Path, RunEval]                # where each evaluation came from, and why one was not read
    samples: list[tuple[str, str, bytes | None]]   # (run name, what, the newest sample PNG's bytes or None)


def read_series(paths: Sequence[Path]) -> dict[Path, dict[str, Series]]:
    from core.runs.history import load_series

    return {Path(p): load_series(p) for p in paths}


def _newest_sample(run: Path) -> tuple[str, bytes | None]:
    from core.files import FileRefused, read_regular

    try:
        pngs = sorted(p for p in (run / "samples").iterdir() if p.suffix.lower() == ".png")
    except OSError:
        return "no samples yet", None
    if not pngs:
        return "no samples yet", None
    try:
        return pngs[-1].name, read_regular(pngs[-1], MAX_SAMPLE_BYTES, within=run)
    except (OSError, FileRefused) as e:
        return f"{pngs[-1].name}: {e}", None


def read_compared(paths: Sequence[Path]) -> Compared:
    """The curves, evaluations (eval.json, label -> number, and the file's RunEval) and newest sample grid of each
    run."""
    from core.runs.evaluation import eval_numbers, read_run_eval

    paths = [Path(p) for p in paths]
    samples = [(p.name, *_newest_sample(p)) for p in paths]
    files = {p: read_run_eval(p) for p in paths}
    return Compared(read_series(paths), {p: eval_numbers(e.result) for p, e in files.items()}, files, samples)


def eval_cell(run: Path, read: RunEval | None) -> tuple[str, str]:
    """The "test: evaluation" cell of a run: (text, tooltip). The file the numbers came from, "damaged" where an
    evaluation file could not be read (the tooltip says why in one line), "" where there is none."""
    if read is None:
        return "", ""
    where = ""
    if read.source is not None:
        where = read.source.relative_to(run).as_posix() if read.source.is_relative_to(run) else read.source.name
    if not read.problem:
        return where, ""
    problem = printable(read.problem)[:200]
    return (f"{where}; damaged file" if where else "damaged"), problem


def run_label(run: RunSummary, diff: dict[str, list[Any]], i: int) -> str:
    """The legend's name of a run: its name and up to three settings that differ."""
    parts = [f"{k.split('.')[-1]}={values[i]}" for k, values in list(diff.items())[:3]]
    return f"{run.name[:20]}" + (f" ({', '.join(parts)})" if parts else "")


def diff_text(runs: Sequence[RunSummary], diff: dict[str, list[Any]]) -> str:
    if not diff:
        return "The runs' settings are the same."
    lines = [f"{'setting':<28}" + "".join(f"{r.name[:24]:>26}" for r in runs)]
    lines += [f"{k:<28}" + "".join(f"{str(v)[:24]:>26}" for v in values) for k, values in diff.items()]
    return "\n".join(lines)


class CompareView(QTabWidget):
    """Curves, settings that differ, samples, metrics of the compared runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunSummary] = []
        self.evals: dict[Path, dict[str, float]] = {}
        self.eval_files: dict[Path, RunEval] = {}
        self.curves_view = CompareCurves()
        self.diff_view = QPlainTextEdit()
        self.diff_view.setReadOnly(True)
        self.samples_row = QWidget()
        self.samples_layout = QHBoxLayout(self.samples_row)
        samples = QScrollArea()
        samples.setWidgetResizable(True)
        samples.setWidget(self.samples_row)
        self.metrics_table = QTableWidget(0, 0)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.addTab(self.curves_view, "Curves")
        self.addTab(self.diff_view, "Settings that differ")
        self.addTab(samples, "Samples")
        self.addTab(self.metrics_table, "Metrics")

    def show_runs(self, runs: Sequence[RunSummary], diff: dict[str, list[Any]]) -> None:
        """New runs to compare: what is known at once (settings, metrics); curves and samples follow (`show_read`)."""
        self.runs, self.evals, self.eval_files = list(runs), {}, {}
        self.curves_view.set_runs(runs, {r.path: run_label(r, diff, i) for i, r in enumerate(runs)})
        self.diff_view.setPlainText(diff_text(runs, diff))
        self.show_metrics()

    def update_runs(self, runs: Sequence[RunSummary]) -> None:
        """The same runs, newer summaries (a refresh while they train)."""
        self.runs = list(runs)
        self.show_metrics()

    def show_read(self, compared: Compared) -> None:
        self.evals, self.eval_files = compared.evals, compared.eval_files
        self.curves_view.set_series(compared.series)
        self.show_samples(compared.samples)
        self.show_metrics()

    def show_series(self, series: dict[Path, dict[str, Series]]) -> None:
        self.curves_view.set_series(series)

    def show_samples(self, samples: Sequence[tuple[str, str, bytes | None]]) -> None:
        while self.samples_layout.count():
            w = self.samples_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        for name, what, data in samples:
            box = QWidget()
            bl = QVBoxLayout(box)
            bl.addWidget(QLabel(printable(f"{name}\n{what}")))
            pixmap = QPixmap()
            if data is not None and pixmap.loadFromData(data):
                pic = QLabel()
                pic.setPixmap(pixmap.scaled(pixmap.width() * 3, pixmap.height() * 3,
                                            Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.FastTransformation))
                bl.addWidget(pic)
            bl.addStretch(1)
            self.samples_layout.addWidget(box)

    def show_metrics(self) -> None:
        runs = self.runs
        keys = sorted({k for r in runs for k in r.headline})
        evals = [self.evals.get(Path(r.path), {}) for r in runs]
        eval_keys: list[str] = []
        for e in evals:
            eval_keys += [k for k in e if k not in eval_keys]
        files = [eval_cell(Path(r.path), self.eval_files.get(Path(r.path))) for r in runs]
        with_file = any(text for text, _ in files)     # the row where a run has an evaluation or a damaged file
        rows = ["status", "epochs", "best val", "tags", *keys, *(["test: evaluation"] if with_file else []),
                *(f"test: {k}" for k in eval_keys)]
        self.metrics_table.setRowCount(len(rows))
        self.metrics_table.setColumnCount(len(runs))
        self.metrics_table.setHorizontalHeaderLabels([r.name for r in runs])
        self.metrics_table.setVerticalHeaderLabels(rows)
        first_eval = len(rows) - len(eval_keys) - int(with_file)
        warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for c, r in enumerate(runs):
            values = [r.status, str(r.epochs_done), "" if r.best_val is None else f"{r.best_val:.4g}",
                      ", ".join(r.tags), *(f"{r.headline[k]:.4g}" if k in r.headline else "" for k in keys),
                      *([files[c][0]] if with_file else []),
                      *(f"{evals[c][k]:.4g}" if k in evals[c] else "" for k in eval_keys)]
            for row, text in enumerate(values):
                item = QTableWidgetItem(text)
                if row >= first_eval and files[c][1]:      # the run's evaluation cells say why a file was not read
                    item.setToolTip(files[c][1])
                    if row == first_eval:
                        item.setIcon(warn)                  # marked as a damaged record is in the runs table
                self.metrics_table.setItem(row, c, item)
        self.metrics_table.resizeColumnsToContents()
