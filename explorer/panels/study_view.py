"""The Experiments tab's "Settings search" page: an Optuna study (`vae-explorer search`, core.experiments.search)
run from the window and shown live.

Pick the dataset (a list), the time budget and the objective, then Start: the search runs on a worker (its trials are
ordinary run folders OUT/trial-NNNN, its study OUT/study.db, so the same folder continues it, from here or the CLI).
The trials table fills in as trials start and end (state, settings, value; pruned trials say so), the best so far is
named above it, and "Open best model" puts the best trial's run into the models list, as the Runs tab's "Open" does.
Needs the `vae-explorer[search]` extra (Optuna); without it, Start says so in one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from explorer.panels.experiment_dataset import DatasetChoice
from explorer.panels.study_plot import StudyPlot
from explorer.panels.study_rows import StudySnapshot, read_study_folder, search_job
from explorer.panels.tasks import PanelTasks
from explorer.widgets.dialogs import show_error
from explorer.widgets.path_dialog import open_or_show_path

POLL_MS = 3000      # how often a followed study is read


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "—"
    return "—" if v is None else str(v)


class StudyView(QWidget):
    def __init__(self, state: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = PanelTasks(self)
        self.snapshot: StudySnapshot | None = None
        self.settings: Any = None
        self.report_path: Path | None = None
        self.followed: Path | None = None      # a study folder another process fills, read every few seconds
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._read_followed)
        self._build()

    def _build_form(self) -> QFormLayout:
        from core.experiments.search import OBJECTIVES

        self.dataset = DatasetChoice()
        self.budget = QSpinBox()
        self.budget.setRange(1, 7 * 24 * 60)
        self.budget.setValue(10)
        self.budget.setSuffix(" min")
        self.budget.setMaximumWidth(120)
        self.budget.setToolTip("The search's time budget: a trial still training when it runs out is stopped")
        self.objective = QComboBox()
        for name, o in OBJECTIVES.items():
            self.objective.addItem(o.label, (name,))
        self.objective.addItem("validation ELBO and Fréchet score (a Pareto front)", ("elbo", "frechet"))
        self.out = QLineEdit()
        self.out.setPlaceholderText("(a folder under the runs folder, named after the dataset)")
        form = QFormLayout()
        form.addRow("Dataset", self.dataset)
        form.addRow("Budget", self.budget)
        form.addRow("Objective", self.objective)
        form.addRow("Study folder", self.out)
        return form

    def _build(self) -> None:
        form = self._build_form()
        self.start_button = QPushButton("Start search")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.open_button = QPushButton("Open best model")
        self.open_button.setToolTip("Put the best trial's run into the models list")
        self.open_button.clicked.connect(self.open_best)
        self.follow_button = QPushButton("Follow a study folder…")
        self.follow_button.setToolTip("Show the trials of a search another process runs (vae-explorer search --out "
                                      "FOLDER, here or on machines sharing the folder) as they start and end")
        self.follow_button.clicked.connect(self._ask_follow)
        self.report_button = QPushButton("Open report")
        self.report_button.setToolTip("The search's HTML report: the trials, best so far, parameter importances and "
                                      "the best run's samples")
        self.report_button.clicked.connect(self.open_report)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.follow_button, self.open_button, self.report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p% of the budget")
        self.status = QLabel("A search trains trials with different settings and keeps the best (Optuna).")
        self.status.setWordWrap(True)
        self.best = QLabel("")
        self.best.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.best)
        self.plot = StudyPlot()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.setSizes([320, 220])
        lay.addWidget(split, 1)
        self._update_buttons()

    def make_settings(self) -> Any:
        from core.experiments.search import SearchSettings

        return SearchSettings(dataset=self.dataset.dataset(), objectives=self.objective.currentData(),
                              budget_s=60.0 * self.budget.value())

    def out_dir(self, settings: Any) -> Path:
        if self.out.text().strip():
            return Path(self.out.text().strip()).expanduser()
        from core.paths import runs_dir

        slug = settings.dataset.replace("folder:", "folder-").replace("/", "-")
        return runs_dir() / "searches" / f"{slug}-{'-'.join(settings.objectives)}"

    # ---- running --------------------------------------------------------------------------------------------------
    def start(self, settings: Any = None) -> bool:
        """Start (or continue) the search; False with a dialog when its settings are wrong."""
        if self.tasks.busy("search"):
            return False
        try:
            from core.experiments.search import base_config, import_optuna
            from core.files import check_writable

            import_optuna()
            self.settings = settings or self.make_settings()
            base_config(self.settings)
            out = self.out_dir(self.settings)
            check_writable(out, f"the study folder {out}")
        except UserError as e:
            show_error(self, str(e))
            return False
        self.timer.stop()
        self.followed = self.report_path = None
        self.status.setText(f"searching {self.settings.dataset} into {out}")
        self.progress.setFormat("%p% of the budget")
        self.tasks.start("search", search_job, self.settings, str(out), iterate=True, on_event=self._on_event,
                         on_finished=lambda stopped: self._update_buttons(), status=self.status.setText)
        self._update_buttons()
        return True

    def stop(self) -> None:
        self.tasks.cancel("search")

    def is_running(self) -> bool:
        return self.tasks.busy("search")

    def _on_event(self, ev: Any) -> None:
        from core.experiments.search import SearchEnded, SearchProgress

        if isinstance(ev, StudySnapshot):
            self.show_snapshot(ev)
        elif isinstance(ev, SearchProgress):
            self.progress.setValue(int(1000 * ev.fraction))
            if ev.message:
                self.status.setText(ev.message)
        elif isinstance(ev, tuple) and ev[0] == "report":
            self.report_path = Path(ev[1])
            self._update_buttons()
        elif isinstance(ev, SearchEnded):
            self.progress.setValue(1000)
            self.progress.setFormat(f"search {ev.status}")
            self.status.setText(f"search {ev.status}: {ev.message}")

    # ---- following a study run elsewhere ----------------------------------------------------------------------------
    def _ask_follow(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A search's folder (it holds study.db)")
        if folder:
            self.follow(Path(folder))

    def follow(self, folder: Path) -> None:
        """Show the trials of the search in `folder` (its study.db), re-read every few seconds."""
        if self.is_running():
            return
        self.followed = folder
        self.status.setText(f"following the search in {folder}")
        self._read_followed()
        self.timer.start()

    def _read_followed(self) -> None:
        if self.followed is None or self.tasks.busy("read"):
            return
        self.tasks.start("read", read_study_folder, self.followed, on_result=self.show_snapshot, status=self._failed,
                         on_failed=lambda _message, _details: self.timer.stop())

    def _failed(self, text: str) -> None:
        if text.startswith("failed: "):
            self.status.setText(text)

    # ---- the trials -----------------------------------------------------------------------------------------------
    def show_snapshot(self, snapshot: StudySnapshot) -> None:
        self.snapshot = snapshot
        keys = list(dict.fromkeys(k for r in snapshot.rows for k in r.params))
        headers = ["trial", "state", *[k.split(".", 1)[-1] for k in keys], *snapshot.objectives, "seconds", "note"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(snapshot.rows))
        for i, r in enumerate(snapshot.rows):
            values = list(r.values) + [None] * (len(snapshot.objectives) - len(r.values))
            cells = [f"{r.number}{' ★' if r.number in snapshot.best else ''}", r.state,
                     *[_value(r.params.get(k)) for k in keys], *[_value(v) for v in values],
                     "—" if r.duration_s is None else f"{r.duration_s:.0f}",
                     r.note]
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.best.setText(self._describe_best(snapshot))
        self.plot.show_snapshot(snapshot)
        self._update_buttons()

    def _describe_best(self, snapshot: StudySnapshot) -> str:
        counts = ", ".join(f"{snapshot.count(s)} {s}" for s in ("complete", "pruned", "fail", "running")
                           if snapshot.count(s))
        if not snapshot.best:
            return f"{len(snapshot.rows)} trials ({counts}); none has completed yet"
        if len(snapshot.best) > 1:
            return (f"{len(snapshot.rows)} trials ({counts}); Pareto front: trials "
                    f"{', '.join(map(str, snapshot.best))}")
        best = snapshot.row(snapshot.best[0])
        assert best is not None
        values = ", ".join(f"{o} {v:.4g}" for o, v in zip(snapshot.objectives, best.values, strict=False))
        settings = ", ".join(f"{k.split('.', 1)[-1]}={_value(v)}" for k, v in best.params.items())
        return f"Best so far: trial {best.number} ({values}; {settings}). {len(snapshot.rows)} trials ({counts})"

    def best_run(self) -> Path | None:
        """The best trial's checkpoint (the first of a Pareto front), or None while no trial has completed."""
        if self.snapshot is None or not self.snapshot.best:
            return None
        row = self.snapshot.row(self.snapshot.best[0])
        if row is None or not row.run:
            return None
        ckpts = self.snapshot.folder / row.run / "checkpoints"
        return next((p for p in (ckpts / "best.safetensors", ckpts / "last.safetensors") if p.is_file()), None)

    def open_best(self) -> None:
        """The best trial's model joins the models list (and is shown), as the Runs tab's Open does."""
        path = self.best_run()
        if path is None:
            return
        from core.training.checkpoint import load_model

        name = f"search/{path.parent.parent.name}"
        self.tasks.start("open", load_model, str(path), status=self.status.setText,
                         on_result=lambda loaded: self.state.add_model(loaded, source="run folder", name=name))

    def open_report(self) -> None:
        if self.report_path is not None:
            open_or_show_path(self, self.report_path, what="the search's report")

    def _update_buttons(self) -> None:
        running = self.tasks.busy("search")
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.follow_button.setEnabled(not running)
        self.report_button.setEnabled(self.report_path is not None and self.report_path.is_file() and not running)
        self.open_button.setEnabled(self.best_run() is not None)

    def shutdown(self) -> None:
        self.timer.stop()
        self.tasks.shutdown()
