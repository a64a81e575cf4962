"""The Experiments panel: run a built-in experiment (the reference study, a beta sweep), follow one started elsewhere,
or search for good settings (the "Settings search" page, study_view.py).

Pick the experiment, the dataset (a list) and the scale ("quick": minutes on a CPU; "full": the presets' own
settings) and how many runs train at once, then Start. With one at a time the runs train one after another on a
worker (core.experiments.runner); with more, each in its own process (core.experiments.launchers.local: one GPU
each, or an equal share of the CPU cores). Each run is an ordinary run folder under the output folder. Stop keeps
what is done (an interrupted run keeps its checkpoint): Start again continues and retrains nothing finished. At the
end the HTML report is written. The output folder joins the Runs tab's folders, and each finished run's best
checkpoint joins the models list.

"Follow a folder…" watches an experiment folder that another process fills (`vae-explorer experiment` in a
terminal, --parallel, Ray or Slurm runs on shared storage): the table reads its run folders every few seconds.

The table (experiment_table.py) fills in as runs finish, with the report's columns and a scatter of a setting
against a number; the time left is estimated from the finished runs' durations (experiment_rows.TimeLeft).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from explorer.panel import Panel
from explorer.panels.experiment_dataset import FOLDER_ITEM
from explorer.panels.experiment_form import ExperimentForm
from explorer.panels.experiment_rows import ExperimentReader, ExperimentSnapshot, TimeLeft, describe_seconds
from explorer.panels.experiment_table import ExperimentTable
from explorer.panels.study_view import StudyView
from explorer.panels.tasks import PanelTasks
from explorer.settings import Persisted, add_experiment_folder
from explorer.widgets.dialogs import show_error
from explorer.widgets.path_dialog import open_or_show_path

POLL_MS = 2000      # how often a watched experiment folder is read


def experiment_job(spec: Any, out_dir: str, parallel: int, should_stop: Any) -> Iterator[Any]:
    """The experiment's events, then ("report", path) when it completed (run on the worker). With `parallel` > 1 the
    runs train in that many processes at once (the local launcher)."""
    from core.experiments.launchers import make_launcher
    from core.experiments.report import write_experiment_report
    from core.experiments.runner import ExperimentEnded, run_experiment

    launcher = make_launcher("local", parallel=parallel) if parallel > 1 else None
    ended = None
    for ev in run_experiment(spec, out_dir, should_stop=should_stop, launcher=launcher):
        if isinstance(ev, ExperimentEnded):
            ended = ev
        yield ev
    if ended is not None and ended.status != "stopped":
        yield ("report", write_experiment_report(spec, out_dir))


class ExperimentsPanel(Panel, QWidget):
    title = "Experiments"
    takes_view = False

    def __init__(self, state: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = PanelTasks(self)
        self.report_path: Path | None = None
        self.spec: Any = None
        self._out = Path()
        self.watched: Path | None = None                       # the folder the table reads
        self._planned: dict[str, dict[str, Any]] | None = None  # its runs (ours), or None: whatever it holds
        self._run_progress: dict[str, float] = {}               # training progress of our running runs
        self._read_again = False                                # the folder changed while it was being read
        self.reader = ExperimentReader()
        self.time_left = TimeLeft()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._build()
        f, settings = self.form, state.settings   # chosen last time (explorer/settings.py): an unfinished experiment's
        for key, box in (("name", f.name_box), ("scale", f.scale_box),    # progress and "Continue" show again
                         ("sources", f.sources_box)):
            Persisted(settings, f"experiments.{key}", box.currentText(), get=box.currentText, set_=box.setCurrentText,
                      changed=box.currentTextChanged, owner=box)
        Persisted(settings, "experiments.prior_steps", f.prior_steps.value(), get=f.prior_steps.value,
                  set_=f.prior_steps.setValue, changed=f.prior_steps.valueChanged, owner=f.prior_steps)
        Persisted(settings, "experiments.dataset", f.dataset.dataset(), get=f.dataset.dataset, changed=f.changed,
                  set_=lambda d: f.dataset.set_dataset(d) if d != FOLDER_ITEM else None, owner=f.dataset)
        Persisted(settings, "experiments.folder", "", get=lambda: f.out.text().strip(), set_=f.out.setText,
                  changed=f.changed, owner=f.out)
        self.preview()

    def _build(self) -> None:
        self.form = ExperimentForm()
        self.form.changed.connect(self.preview)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.follow_button = QPushButton("Follow a folder…")
        self.follow_button.setToolTip("Show the runs of an experiment folder another process fills (a terminal, "
                                      "--parallel, Ray or Slurm runs on shared storage) as they finish")
        self.follow_button.clicked.connect(self._ask_follow)
        self.report_button = QPushButton("Open report")
        self.report_button.clicked.connect(self.open_report)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.follow_button, self.report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Pick an experiment and press Start, or follow an experiment folder.")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window
        self.eta = QLabel("")
        self.table = ExperimentTable()
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        views = QTabWidget()
        views.addTab(self.table, "Runs")
        views.addTab(self.log_view, "Log")
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.addWidget(self.form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.eta)
        lay.addWidget(views, 1)
        self.study = StudyView(self.state)
        self.pages = QTabWidget()
        self.pages.addTab(page, "Experiment")
        self.pages.addTab(self.study, "Settings search")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.pages)
        self._update_buttons()

    # ---- running --------------------------------------------------------------------------------------------------
    def start(self, spec: Any = None) -> bool:
        """Start (or continue) the experiment; False with a dialog when its settings are wrong."""
        if self.tasks.busy("experiment"):
            return False
        try:
            self.spec = spec or self.form.make_spec()
            self.spec.check_data()
            out = self._out = self.form.out_dir(self.spec)   # kept: editing the form while it runs changes nothing
            from core.files import check_writable

            check_writable(out, f"the output folder {out}")
        except UserError as e:
            show_error(self, str(e))
            return False
        parallel = self.form.parallel.value()
        self.report_path = None
        self._log(f"{self.spec.name}: {len(self.spec.runs)} runs into {out}"
                  + (f", {parallel} at once" if parallel > 1 else ""))
        self._add_runs_folder(out)
        self._watch(out, {r.name: r.delta for r in self.spec.runs}, slots=parallel)
        self.tasks.start("experiment", experiment_job, self.spec, str(out), parallel, iterate=True,
                         on_event=self._on_event, on_finished=lambda stopped: self._finished(stopped),
                         status=self.status.setText)
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self.tasks.cancel("experiment"):
            self._log("stopping after the current step (the run keeps its checkpoint; Start continues)")

    def is_running(self) -> bool:
        return self.tasks.busy("experiment")

    def _on_event(self, ev: Any) -> None:
        from core.experiments.runner import ExperimentEnded, ExperimentProgress
        from core.training.events import StepMetrics

        if isinstance(ev, ExperimentProgress):
            self.progress.setValue(int(1000 * ev.fraction))
            self.status.setText(f"run {ev.index + 1} of {ev.total}: {ev.run} ({ev.stage})")
            if isinstance(ev.train_event, StepMetrics):
                self._run_progress[ev.run] = ev.train_event.progress
            if ev.train_event is None and ev.message:
                self._log(ev.message)
                self.poll()            # a run started, finished or failed: the table shows it now
            if ev.stage == "done":
                self._add_model(ev.run)
        elif isinstance(ev, ExperimentEnded):
            self._log(f"experiment {ev.status}: {ev.message}")
            self.status.setText(f"experiment {ev.status}: {ev.message}")
        elif isinstance(ev, tuple) and ev[0] == "report":
            self.report_path = Path(ev[1])
            self._log(f"report: {self.report_path}")

    def _finished(self, stopped: bool) -> None:
        if stopped:
            self.status.setText("stopped: Start continues where it stopped")
        self.poll()
        self._update_buttons()

    def _add_model(self, run: str) -> None:
        """A finished run's best checkpoint joins the models list (not shown: the user picks it there)."""
        ckpts = self._out / run / "checkpoints"
        path = next((p for p in (ckpts / "best.safetensors", ckpts / "last.safetensors") if p.is_file()), None)
        if path is None or any(e.name == f"{self.spec.name}/{run}" for e in self.state.models):
            return
        from core.training.checkpoint import load_model

        name = f"{self.spec.name}/{run}"     # loaded on a worker, then listed (not shown: the user picks it)
        self.tasks.start(f"open {run}", load_model, str(path), error_dialog=False,
                         on_result=lambda loaded: self.state.add_model(loaded, source="experiment", name=name,
                                                                       show=False),
                         on_failed=lambda message, _details: self._log(f"{run}: its checkpoint could not be opened: "
                                                                       f"{message}"))

    def _add_runs_folder(self, out: Path) -> None:
        """The Runs tab lists the experiments' output folders (explorer/settings.py, this tab's own key): this one
        joins them."""
        add_experiment_folder(QSettings(), str(out))

    def preview(self) -> None:
        """Before Start: the runs Start would train, with those its folder already holds (an interrupted experiment
        shows how far it got, and Start reads "Continue")."""
        if self.is_running():
            return
        try:
            spec = self.form.make_spec()
            out = self.form.out_dir(spec)
        except UserError:
            return
        self.timer.stop()
        self.watched, self._planned = out, {r.name: r.delta for r in spec.runs}
        self.poll()

    # ---- the live table -------------------------------------------------------------------------------------------
    def _ask_follow(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "An experiment folder (one run folder per run)")
        if folder:
            self.follow(Path(folder))

    def follow(self, folder: Path) -> None:
        """Show the runs of an experiment folder that another process fills, as they finish."""
        if self.is_running():
            return
        self._log(f"following {folder}")
        self.status.setText(f"following {folder}: its runs appear as they start and finish")
        self._add_runs_folder(folder)
        self._watch(folder, None, slots=1)

    def _watch(self, folder: Path, planned: dict[str, dict[str, Any]] | None, *, slots: int) -> None:
        self.watched, self._planned, self._run_progress = folder, planned, {}
        self.time_left = TimeLeft(slots)
        self.poll()
        self.timer.start()

    def poll(self) -> None:
        """Read the watched folder on a worker (a read still running finishes first, then another follows)."""
        if self.watched is None:
            return
        if self.tasks.busy("read"):
            self._read_again = True
            return
        self._read_again = False
        self.tasks.start("read", self.reader.read, self.watched, self._planned, on_result=self._on_snapshot,
                         error_dialog=False)

    def _on_snapshot(self, snapshot: ExperimentSnapshot) -> None:
        if self._read_again:
            QTimer.singleShot(0, self.poll)
        if snapshot.folder != self.watched:
            return
        self.table.show_snapshot(snapshot)
        running = self.is_running() or snapshot.count("training") > 0
        if self._planned is None:        # a followed folder: as many at once as it shows running
            self.time_left.slots = max(1, snapshot.count("training"))
            done = snapshot.count("done", "trained")
            self.progress.setValue(int(1000 * done / len(snapshot.rows)) if snapshot.rows else 0)
        seconds = self.time_left.seconds(snapshot.rows, progress=self._run_progress)
        self.eta.setText(describe_seconds(seconds) if running and seconds != 0 else "")
        if not running and not self.is_running() and self._planned is not None:
            self.timer.stop()            # our experiment ended: nothing changes any more
            done = snapshot.count("done")
            self.start_button.setText("Continue" if 0 < done < len(snapshot.rows) else "Start")

    def open_report(self) -> None:
        """In the browser; without one (a remote session), its path with a Copy button."""
        if self.report_path is not None:
            open_or_show_path(self, self.report_path, what="the experiment's report")

    def _update_buttons(self) -> None:
        running = self.tasks.busy("experiment")
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.follow_button.setEnabled(not running)
        self.report_button.setEnabled(self.report_path is not None and not running)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def shutdown(self) -> None:
        self.timer.stop()
        self.tasks.shutdown()
        self.study.shutdown()
