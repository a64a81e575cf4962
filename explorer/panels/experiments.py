"""The Experiments panel: run a built-in experiment (the reference study, a beta sweep) with one click.

Pick the experiment, the dataset and the scale ("quick": minutes on a CPU; "full": the presets' own settings), then
Start. The runs train one after another on a worker (core.experiments.runner), each an ordinary run folder under the
output folder; the panel shows which run is training, the overall progress and ETA, and a log. Stop keeps what is done
(the interrupted run keeps its checkpoint): Start again continues where it stopped and retrains nothing finished. At
the end the HTML report is written; "Open report" shows it in the browser. The output folder joins the Runs tab's
folders, and each finished run's best checkpoint joins the models list.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from explorer.panel import Panel
from explorer.panels.tasks import PanelTasks
from explorer.widgets.dialogs import show_error


def experiment_job(spec: Any, out_dir: str, should_stop: Any) -> Iterator[Any]:
    """The experiment's events, then ("report", path) when it completed (run on the worker)."""
    from core.experiments.report import write_experiment_report
    from core.experiments.runner import ExperimentEnded, run_experiment

    ended = None
    for ev in run_experiment(spec, out_dir, should_stop=should_stop):
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
        self._started_at = 0.0
        self._build()

    def _build(self) -> None:
        from core.experiments.spec import EXPERIMENTS

        self.name_box = QComboBox()
        self.name_box.addItems(list(EXPERIMENTS))
        self.dataset = QLineEdit("digits")
        self.dataset.setToolTip("digits, mnist, fashion-mnist, cifar10 or folder:PATH")
        self.scale_box = QComboBox()
        self.scale_box.addItems(["quick", "full"])
        self.scale_box.setToolTip("quick: small models and few epochs (minutes on a CPU); full: the presets' settings")
        self.out = QLineEdit()
        self.out.setPlaceholderText("(a folder under the runs folder, named after the experiment)")
        choose = QPushButton("Choose...")
        choose.clicked.connect(self._ask_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(choose)
        form = QFormLayout()
        form.addRow("Experiment", self.name_box)
        form.addRow("Dataset", self.dataset)
        form.addRow("Scale", self.scale_box)
        form.addRow("Output folder", out_row)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.name_box.currentTextChanged.connect(lambda _: self._describe())

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.report_button = QPushButton("Open report")
        self.report_button.clicked.connect(self.open_report)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.report_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Pick an experiment and press Start.")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.description)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.log_view, 1)
        self._describe()
        self._update_buttons()

    def _describe(self) -> None:
        try:
            spec = self.make_spec()
        except UserError as e:
            self.description.setText(str(e))
            return
        self.description.setText(f"{spec.description} ({len(spec.runs)} runs: "
                                 f"{', '.join(r.name for r in spec.runs)})")

    def make_spec(self) -> Any:
        from core.experiments.spec import experiment

        return experiment(self.name_box.currentText(), self.dataset.text().strip() or "digits",
                          self.scale_box.currentText())

    def out_dir(self, spec: Any) -> Path:
        """The folder given, or one under the runs folder named after the experiment, dataset and scale."""
        if self.out.text().strip():
            return Path(self.out.text().strip()).expanduser()
        from core.paths import runs_dir

        slug = (self.dataset.text().strip() or "digits").replace("folder:", "folder-").replace("/", "-")
        return runs_dir() / "experiments" / f"{spec.name}-{slug}-{self.scale_box.currentText()}"

    def _ask_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder for the experiment's runs")
        if folder:
            self.out.setText(folder)

    # ---- running --------------------------------------------------------------------------------------------------
    def start(self, spec: Any = None) -> bool:
        """Start (or continue) the experiment; False with a dialog when its settings are wrong."""
        if self.tasks.busy("experiment"):
            return False
        try:
            self.spec = spec or self.make_spec()
            out = self._out = self.out_dir(self.spec)   # kept: editing the form while it runs changes nothing
            from core.files import check_writable

            check_writable(out, f"the output folder {out}")
        except UserError as e:
            show_error(self, str(e))
            return False
        self.report_path = None
        self._started_at = time.perf_counter()
        self._log(f"{self.spec.name}: {len(self.spec.runs)} runs into {out}")
        self._add_runs_folder(out)
        self.tasks.start("experiment", experiment_job, self.spec, str(out), iterate=True, on_event=self._on_event,
                         on_finished=lambda stopped: self._finished(stopped), status=self.status.setText)
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self.tasks.cancel("experiment"):
            self._log("stopping after the current step (the run keeps its checkpoint; Start continues)")

    def is_running(self) -> bool:
        return self.tasks.busy("experiment")

    def _on_event(self, ev: Any) -> None:
        from core.experiments.runner import ExperimentEnded, ExperimentProgress

        if isinstance(ev, ExperimentProgress):
            self.progress.setValue(int(1000 * ev.fraction))
            elapsed = time.perf_counter() - self._started_at
            eta = elapsed * (1 - ev.fraction) / ev.fraction if ev.fraction > 0.01 else None
            self.status.setText(f"run {ev.index + 1} of {ev.total}: {ev.run} ({ev.stage})"
                                + (f" · about {eta / 60:.0f} min left" if eta is not None else ""))
            if ev.train_event is None and ev.message:
                self._log(ev.message)
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
        """The Runs tab reads its folders from the settings: the experiment's folder joins them."""
        settings = QSettings()
        extra = settings.value("runs/folders", []) or []
        extra = [extra] if isinstance(extra, str) else list(extra)
        if str(out) not in extra:
            settings.setValue("runs/folders", [*extra, str(out)])

    def open_report(self) -> None:
        if self.report_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report_path)))

    def _update_buttons(self) -> None:
        running = self.tasks.busy("experiment")
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.report_button.setEnabled(self.report_path is not None and not running)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def shutdown(self) -> None:
        self.tasks.shutdown()
