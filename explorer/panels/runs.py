"""The Runs panel: every run folder under the user's runs folder and any folder added, compared side by side.

The table lists each run (name, start, model kind, dataset and subset, status, epochs, best validation, headline
metrics; unreadable folders with the reason) and can be sorted and filtered. It re-reads the folders every few seconds
on a worker, so runs being written (by this app, the CLI or a cluster on a shared disk) update live. Select two or
more runs to compare them: their settings that differ, their curves overlaid (one colour per run, the legend naming
the differing settings, x as step, epoch or wall time), their newest sample grids side by side and their metrics in
one table. Export the runs (or the compared curves) as CSV, or a self-contained HTML report; "Open" puts a run's
best checkpoint in the models list. All reading is in core.runs (Qt-free); this file only shows it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QItemSelection, QItemSelectionModel, QSettings, Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from core.errors import UserError
from explorer.panel import Panel
from explorer.panels.tasks import PanelTasks
from explorer.widgets.dialogs import show_error
from explorer.widgets.live_plot import COLORS
from explorer.worker import Worker

COLUMNS = ("name", "started", "kind", "dataset", "subset", "status", "epochs", "best val", "headline", "note")
REFRESH_MS = 3000
X_AXES = ("step", "epoch", "time")


def _read_runs(folders: list[str], compared: list[Path]) -> tuple[list[Any], dict[Path, Any]]:
    """The runs of the folders, and the curves of the compared ones (read on a worker: records can be long)."""
    from core.runs.history import find_runs

    return find_runs([Path(f) for f in folders]), _read_series(compared)


def _read_series(paths: list[Path]) -> dict[Path, Any]:
    from core.runs.history import load_series

    return {Path(p): load_series(p) for p in paths}


def _read_evals(paths: list[Path]) -> dict[Path, dict[str, float]]:
    """Each run's evaluation (eval.json, an experiment's runs have one) as label -> number."""
    from core.runs.evaluation import eval_numbers, read_eval

    return {Path(p): eval_numbers(read_eval(p)) for p in paths}


class _NumberItem(QTableWidgetItem):
    """Sorts by a number, shows text."""

    def __init__(self, text: str, key: float) -> None:
        super().__init__(text)
        self.key = key

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.key < getattr(other, "key", float("-inf"))


class RunsPanel(Panel, QWidget):
    title = "Runs"
    takes_view = False   # it opens runs into the app's models list

    def __init__(self, state: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.settings = QSettings()
        self.runs: list[Any] = []
        self.compared: list[Any] = []
        self._labels: dict[Path, str] = {}
        self._series: dict[Path, Any] = {}     # the compared runs' curves, read on a worker
        self._evals: dict[Path, dict[str, float]] = {}   # the compared runs' eval.json numbers, read on a worker
        self.curves: dict[Path, Any] = {}
        self.tasks = PanelTasks(self)
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    # ---- layout ---------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.folders_label = QLabel()
        add = QPushButton("Add folder...")
        add.clicked.connect(self._ask_folder)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: name, dataset, status, kind ...")
        self.filter.textChanged.connect(self._apply_filter)
        top = QHBoxLayout()
        top.addWidget(self.folders_label, 1)
        top.addWidget(add)
        top.addWidget(self.filter)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.compare_button = QPushButton("Compare")
        self.compare_button.clicked.connect(self.compare_selected)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Put the run's best checkpoint (or its last) in the models list")
        self.open_button.clicked.connect(self.open_selected)
        self.csv_button = QPushButton("Export CSV...")
        self.csv_button.clicked.connect(self._ask_csv)
        self.report_button = QPushButton("Report...")
        self.report_button.setToolTip("One self-contained HTML file: curves, sample grids, metrics, settings")
        self.report_button.clicked.connect(self._ask_report)
        buttons = QHBoxLayout()
        for b in (self.compare_button, self.open_button, self.csv_button, self.report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.status = QLabel()
        buttons.addWidget(self.status)

        upper = QWidget()
        ul = QVBoxLayout(upper)
        ul.setContentsMargins(0, 0, 0, 0)
        ul.addLayout(top)
        ul.addWidget(self.table, 1)
        ul.addLayout(buttons)

        # The comparison: curves, settings that differ, sample grids, metrics.
        self.series_box = QComboBox()
        self.series_box.currentTextChanged.connect(lambda _: self._draw_curves())
        self.x_box = QComboBox()
        self.x_box.addItems(X_AXES)
        self.x_box.currentTextChanged.connect(lambda _: self._draw_curves())
        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.plot.addLegend()
        curves = QWidget()
        cl = QVBoxLayout(curves)
        row = QHBoxLayout()
        row.addWidget(QLabel("series"))
        row.addWidget(self.series_box)
        row.addWidget(QLabel("x"))
        row.addWidget(self.x_box)
        row.addStretch(1)
        cl.addLayout(row)
        cl.addWidget(self.plot, 1)
        self.diff_view = QPlainTextEdit()
        self.diff_view.setReadOnly(True)
        self.samples_row = QWidget()
        self.samples_layout = QHBoxLayout(self.samples_row)
        samples = QScrollArea()
        samples.setWidgetResizable(True)
        samples.setWidget(self.samples_row)
        self.metrics_table = QTableWidget(0, 0)
        self.metrics_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.compare_tabs = QTabWidget()
        self.compare_tabs.addTab(curves, "Curves")
        self.compare_tabs.addTab(self.diff_view, "Settings that differ")
        self.compare_tabs.addTab(samples, "Samples")
        self.compare_tabs.addTab(self.metrics_table, "Metrics")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(self.compare_tabs)
        split.setSizes([300, 400])
        lay = QVBoxLayout(self)
        lay.addWidget(split)
        self._update_buttons()

    # ---- folders and the list -------------------------------------------------------------------------------------
    def folders(self) -> list[str]:
        from core.paths import runs_dir

        extra = self.settings.value("runs/folders", []) or []
        extra = [extra] if isinstance(extra, str) else list(extra)
        return list(dict.fromkeys([str(runs_dir()), *extra]))

    def add_folder(self, folder: str) -> None:
        extra = [f for f in self.folders()[1:] if f != folder] + [folder]
        self.settings.setValue("runs/folders", extra)
        self.refresh()

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of runs")
        if folder:
            self.add_folder(folder)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.refresh()
        self.timer.start()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def refresh(self) -> Worker | None:
        """Re-read the folders on a worker; while one read runs, a tick does nothing (the next one reads again)."""
        if self.tasks.busy("runs"):
            return None
        folders = self.folders()
        self.folders_label.setText("runs in: " + "; ".join(folders))
        return self.tasks.start("runs", _read_runs, folders, [r.path for r in self.compared], on_result=self._on_runs,
                                status=self.status.setText, error_dialog=False)

    def _on_runs(self, result: tuple[list[Any], dict[Path, Any]]) -> None:
        runs, series = result
        selected = {r.path for r in self.selected_runs()}
        self.runs = list(runs)
        self.table.setSortingEnabled(False)
        with signals_blocked(self.table):
            self.table.setRowCount(len(self.runs))
            for row, r in enumerate(self.runs):
                started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else ""
                epochs = f"{r.epochs_done}/{r.epochs_total}" if r.epochs_total else str(r.epochs_done)
                headline = ", ".join(f"{k} {v:.4g}" for k, v in list(r.headline.items())[:3])
                cells = [QTableWidgetItem(r.name), _NumberItem(started, r.started or 0.0),
                         QTableWidgetItem(r.kind or ""), QTableWidgetItem(r.dataset or ""),
                         QTableWidgetItem(r.subset), QTableWidgetItem(r.status),
                         _NumberItem(epochs, r.epochs_done),
                         _NumberItem("" if r.best_val is None else f"{r.best_val:.4g}",
                                     r.best_val if r.best_val is not None else float("-inf")),
                         QTableWidgetItem(headline), QTableWidgetItem(r.reason)]
                cells[0].setData(Qt.ItemDataRole.UserRole, str(r.path))
                cells[0].setToolTip(str(r.path))
                for col, item in enumerate(cells):
                    self.table.setItem(row, col, item)
            self.table.setSortingEnabled(True)
            self._select_rows_of({str(p) for p in selected})
        self.table.resizeColumnsToContents()
        self._apply_filter()
        live = sum(r.status == "running" for r in self.runs)
        self.status.setText(f"{len(self.runs)} runs" + (f", {live} running" if live else ""))
        if self.compared and series:   # live runs in the comparison: redraw with their new points
            paths = {r.path for r in self.compared}
            self.compared = [r for r in self.runs if r.path in paths] or self.compared
            self._series.update(series)
            self._draw_curves()
        self._update_buttons()

    def _apply_filter(self) -> None:
        words = self.filter.text().lower().split()
        for row in range(self.table.rowCount()):
            text = " ".join(self.table.item(row, c).text().lower() for c in range(len(COLUMNS)))
            self.table.setRowHidden(row, not all(w in text for w in words))

    def selected_runs(self) -> list[Any]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        by_path = {str(r.path): r for r in self.runs}
        out = []
        for row in rows:
            item = self.table.item(row, 0)
            run = by_path.get(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None
            if run is not None:
                out.append(run)
        return out

    def select_paths(self, paths: list[Path]) -> None:
        self._select_rows_of({str(p) for p in paths})

    def _select_rows_of(self, wanted: set[str]) -> None:
        """Select exactly the rows of these run folders, in one selection change. (Row by row, `selectRow` in
        ExtendedSelection mode replaces the selection each time: a refresh kept only the last run selected.)"""
        model = self.table.model()
        chosen = QItemSelection()
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) in wanted:
                chosen.select(model.index(row, 0), model.index(row, model.columnCount() - 1))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().select(chosen, flags)

    def _update_buttons(self) -> None:
        readable = [r for r in self.selected_runs() if r.status != "unreadable"]
        self.compare_button.setEnabled(len(readable) >= 1)
        self.open_button.setEnabled(len(readable) == 1)
        self.csv_button.setEnabled(bool(self.runs))
        self.report_button.setEnabled(len(readable) >= 1)

    # ---- compare --------------------------------------------------------------------------------------------------
    def compare_selected(self) -> None:
        runs = [r for r in self.selected_runs() if r.status != "unreadable"]
        if not runs:
            return
        from core.runs.history import config_diff

        self.compared = runs
        diff = config_diff(runs)
        self._labels = {r.path: self._label(r, diff, i) for i, r in enumerate(runs)}
        lines = [f"{'setting':<28}" + "".join(f"{r.name[:24]:>26}" for r in runs)]
        lines += [f"{k:<28}" + "".join(f"{str(v)[:24]:>26}" for v in values) for k, values in diff.items()]
        self.diff_view.setPlainText("\n".join(lines) if diff else "The runs' settings are the same.")
        self._show_samples(runs)
        self._show_metrics(runs)
        self.tasks.start("series", _read_series, [r.path for r in runs], on_result=self._on_series,
                         status=self.status.setText, error_dialog=False)
        self._evals = {}
        self.tasks.start("evals", _read_evals, [r.path for r in runs], on_result=self._on_evals, error_dialog=False)

    def _on_evals(self, evals: dict[Path, dict[str, float]]) -> None:
        self._evals = evals
        self._show_metrics(self.compared)

    def _on_series(self, series: dict[Path, Any]) -> None:
        self._series = series
        self._fill_series_box()
        self._draw_curves()

    def _label(self, run: Any, diff: dict[str, list[Any]], i: int) -> str:
        parts = [f"{k.split('.')[-1]}={values[i]}" for k, values in list(diff.items())[:3]]
        return f"{run.name[:20]}" + (f" ({', '.join(parts)})" if parts else "")

    def _fill_series_box(self) -> None:
        names = sorted({n for s in self._series.values() for n in s})
        current = self.series_box.currentText() or "loss"
        with signals_blocked(self.series_box):
            self.series_box.clear()
            self.series_box.addItems(names)
            self.series_box.setCurrentText(current if current in names else (names[0] if names else ""))

    def _draw_curves(self) -> None:
        if not self.compared:
            return
        name, x_axis = self.series_box.currentText(), self.x_box.currentText()
        self.plot.clear()
        self.legend.clear()
        self.curves: dict[Path, Any] = {}
        for i, run in enumerate(self.compared):
            series = self._series.get(Path(run.path), {}).get(name)
            if series is None or not len(series.value):
                continue
            xs = {"step": series.step, "epoch": series.epoch, "time": series.time - series.time[0]}[x_axis]
            pen = pg.mkPen(COLORS[i % len(COLORS)], width=2)
            self.curves[run.path] = self.plot.plot(np.asarray(xs, float), np.asarray(series.value, float), pen=pen,
                                                   name=self._labels.get(run.path, run.name))
        self.plot.setLabel("bottom", {"step": "step", "epoch": "epoch", "time": "wall time (s)"}[x_axis])
        self.plot.setLabel("left", name)

    def _show_samples(self, runs: list[Any]) -> None:
        while self.samples_layout.count():
            w = self.samples_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        for run in runs:
            pngs = sorted((Path(run.path) / "samples").glob("*.png"))
            box = QWidget()
            bl = QVBoxLayout(box)
            title = QLabel(f"{run.name}\n{pngs[-1].name if pngs else 'no samples yet'}")
            bl.addWidget(title)
            if pngs:
                pic = QLabel()
                pixmap = QPixmap(str(pngs[-1]))
                pic.setPixmap(pixmap.scaled(pixmap.width() * 3, pixmap.height() * 3,
                                            Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.FastTransformation))
                bl.addWidget(pic)
            bl.addStretch(1)
            self.samples_layout.addWidget(box)

    def _show_metrics(self, runs: list[Any]) -> None:
        keys = sorted({k for r in runs for k in r.headline})
        evals = [self._evals.get(Path(r.path), {}) for r in runs]
        eval_keys: list[str] = []
        for e in evals:
            eval_keys += [k for k in e if k not in eval_keys]
        rows = ["status", "epochs", "best val", *keys, *(f"test: {k}" for k in eval_keys)]
        self.metrics_table.setRowCount(len(rows))
        self.metrics_table.setColumnCount(len(runs))
        self.metrics_table.setHorizontalHeaderLabels([r.name for r in runs])
        self.metrics_table.setVerticalHeaderLabels(rows)
        for c, r in enumerate(runs):
            values = [r.status, str(r.epochs_done), "" if r.best_val is None else f"{r.best_val:.4g}",
                      *(f"{r.headline[k]:.4g}" if k in r.headline else "" for k in keys),
                      *(f"{evals[c][k]:.4g}" if k in evals[c] else "" for k in eval_keys)]
            for row, text in enumerate(values):
                self.metrics_table.setItem(row, c, QTableWidgetItem(text))
        self.metrics_table.resizeColumnsToContents()

    # ---- open, export, report -------------------------------------------------------------------------------------
    def open_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 1:
            return
        ckpts = Path(runs[0].path) / "checkpoints"
        path = next((p for p in (ckpts / "best.safetensors", ckpts / "last.safetensors") if p.is_file()), None)
        if path is None:
            show_error(self, f"{runs[0].name} has no checkpoint yet: it is saved at the end of its first epoch.")
            return
        from core.training.checkpoint import load_model

        name = runs[0].name     # loaded on a worker (a large model takes a while), then listed
        self.tasks.start("open", load_model, str(path), status=self.status.setText,
                         on_result=lambda loaded: self.state.add_model(loaded, source="run folder", name=name))

    def export_csv(self, path: str) -> Path:
        from core.runs.export import write_runs_csv, write_series_csv

        if self.compared and path.endswith("-curves.csv"):
            return write_series_csv([r.path for r in self.compared], Path(path))
        return write_runs_csv(self.selected_runs() or self.runs, Path(path))

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export runs as CSV (name it *-curves.csv for the compared "
                                              "curves)", "runs.csv", "CSV (*.csv)")
        if path:
            try:
                self.status.setText(f"wrote {self.export_csv(path)}")
            except (UserError, OSError) as e:
                show_error(self, f"Could not write {path}: {e}")

    def report_runs(self) -> list[Path]:
        """The runs a report covers: the selected readable ones, else the compared ones."""
        runs = [r for r in self.selected_runs() if r.status != "unreadable"] or self.compared
        if not runs:
            raise UserError("select one or more runs to report on")
        return [r.path for r in runs]

    def write_report(self, path: str) -> Path:
        from core.runs.report import write_report

        return write_report(self.report_runs(), Path(path))

    def _ask_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the report", "report.html", "HTML (*.html)")
        if not path:
            return
        from core.runs.report import write_report

        try:
            runs = self.report_runs()
        except UserError as e:
            show_error(self, str(e))
            return
        # Reading every record and embedding the grids takes a while for long runs: on a worker.
        self.tasks.start("report", write_report, runs, Path(path), status=self.status.setText,
                         on_result=lambda written: self.status.setText(f"wrote {written}"))

    def shutdown(self) -> None:
        self.timer.stop()
        self.tasks.shutdown()
