"""The Train panel: a config form, Train / Pause / Stop / Resume, and the run's dashboard (dashboard.py).

Training runs `core.training.trainer.Trainer.run()` in a `Worker` thread (`TrainJob`, in train_job.py); following a
run folder runs `core.training.run_folder.follow_run()` the same way, read-only (the greyed form shows that run's own
settings, and only "Stop following" is offered: the run belongs to the process writing it). Every event goes to the
dashboard, which draws it; this panel keeps what the events mean for the run (status, last checkpoint, failures). The
model snapshots the trainer yields each epoch are rebuilt into CPU models on the worker thread and handed to AppState,
so the other panels explore the model while it trains.

A composition of small views: the settings form (train_form.py: preset, model kind, the Data / Model / Training
forms, the form's problem), the run controls (train_controls.py: Train, Pause / Resume, Stop, Resume from
checkpoint) and the dashboard (dashboard.py: status, plots, previews, log). This class is the job wiring: it starts
and follows runs, keeps the run state they show, and hands the run's models to AppState.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from core.config import Config
from core.errors import UserError
from core.training.events import CheckpointSaved, LogMessage, ModelSnapshot, RunEnded, RunStarted
from explorer.panel import Panel
from explorer.panels.dashboard import RunDashboard
from explorer.panels.train_controls import RunControls
from explorer.panels.train_form import KNOWN_DATASETS, TrainSettingsForm
from explorer.panels.train_job import SnapshotLoaded, TrainJob
from explorer.state import AppState
from explorer.widgets.dialogs import show_error
from explorer.worker import Worker

__all__ = ["KNOWN_DATASETS", "TrainPanel"]


class TrainPanel(Panel, QWidget):
    title = "Train"
    takes_view = False   # it trains and follows runs: it writes to the app's models list

    runFinished = Signal(str)    # RunEnded.status, or "failed" when the worker raised

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.worker: Worker | None = None
        self.job: TrainJob | None = None
        self.mode = "idle"            # "idle", "train" or "follow"
        self.run_dir: str | None = None
        self.last_checkpoint: str | None = None
        self.last_status: str | None = None
        self._runs_started = 0
        self._run_key = ""
        self._pending_model: Any = None
        self._last_error = ""
        self._problem = ""
        self._user_settings: dict[str, Any] | None = None   # the form as the user left it, while following a run

        self.form = TrainSettingsForm()
        self.run_buttons = RunControls()   # hidden while following: that run belongs to another process
        self.dashboard = RunDashboard()
        self._expose_views()
        self.form.changed.connect(self.validate)
        self.run_buttons.trainClicked.connect(self.start_training)
        self.run_buttons.pauseClicked.connect(self.toggle_pause)
        self.run_buttons.stopClicked.connect(self.stop)
        self.run_buttons.resumeChosen.connect(lambda path: self.start_training(resume=path))
        self.dashboard.stopFollowing.connect(self.stop)

        controls = QWidget()
        controls.setMinimumWidth(300)
        lay = QVBoxLayout(controls)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.form, 1)
        lay.addWidget(self.run_buttons)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(controls)
        split.addWidget(self.dashboard)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([360, 900])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self.apply_preset("digits")

    def _expose_views(self) -> None:
        """The widgets the window's workspace, the screenshot tool, the benches and the tests drive by name."""
        form, buttons = self.form, self.run_buttons
        self.preset_combo, self.kind_combo, self.forms, self.model_stack = (
            form.preset_combo, form.kind_combo, form.forms, form.model_stack)
        self.data_form, self.vae_form, self.diffusion_form, self.train_form = form.all_forms()
        self.error_label = form.error_label
        self.train_button, self.pause_button, self.stop_button, self.resume_button = (
            buttons.train_button, buttons.pause_button, buttons.stop_button, buttons.resume_button)

    # ---- form -------------------------------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        self.form.apply_preset(name)

    def set_config(self, cfg: Config) -> None:
        self.form.set_config(cfg)

    def config(self) -> Config:
        """The form's configuration; UserError naming the first invalid value."""
        return self.form.config()

    def validate(self) -> str:
        """Check the form now; returns the problem ("" when valid) and enables Train accordingly."""
        self._problem = self.form.problem()
        self.form.show_problem(self._problem, visible=self.mode != "follow")   # a followed run's form is not ours
        self._update_buttons()
        return self._problem

    # ---- controls ---------------------------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.mode == "train" and self.worker is not None and self.worker.is_running()

    def _update_buttons(self) -> None:
        # A followed run belongs to the process that writes it: stopping here would not stop it, and its settings are
        # not the form's to train with. Only the banner's "Stop following" is offered (the run buttons are hidden).
        self.run_buttons.show_state(self.mode, can_train=not self._problem)
        self.form.set_editable(self.mode == "idle")
        self.dashboard.set_following(self.run_dir if self.mode == "follow" else None)

    def toggle_train(self) -> None:
        """Ctrl+T: start when idle, else pause / resume."""
        if self.mode == "idle":
            self.start_training()
        elif self.mode == "train":
            self.toggle_pause()

    def start_training(self, resume: str | None = None) -> bool:
        """Start a run with the form's settings (or resume a checkpoint). False (and a message) when invalid."""
        if self.mode != "idle":
            return False
        problem = self.validate()
        if problem:
            return False
        cfg = self.config()
        # Training takes every core, as the CLI does. DESIGN.md first left one core to the event loop, but the GUI
        # thread needs ~5% of one (measured), and on 2 cores the reserved core cost training 30% of its speed
        # (bench/bench_gui_responsiveness.py: 69% of the CLI's images/s with 1 thread, 91% with 2, the event loop's
        # p99 15 and 20 ms).
        threads = cfg.train.threads or None
        from core.training.run_folder import new_run_dir

        # Resuming, the Trainer continues in the checkpoint's own run folder (or writes none).
        run_dir = None if resume else new_run_dir(cfg)
        self.job = TrainJob(cfg, run_dir=run_dir, resume=resume, threads=threads)
        self._start(Worker(self.job.events, stop=self.job.stop, task="train"), "train")
        where = f"run folder {run_dir}" if run_dir else f"resuming {resume}"
        how = f"{threads} thread(s)" if threads else "torch's default threads"
        self.dashboard.log(f"training {cfg.model.kind} on {cfg.data.name} with {how}; {where}")
        return True

    def follow_run(self, run_dir: str) -> None:
        """Show a run folder another process writes, live and read-only."""
        if self.mode != "idle":
            self.stop()
            if self.worker is not None:
                self.worker.join(30)
        from core.training.run_folder import follow_run

        self.job = None
        self.run_dir = str(run_dir)
        if self._user_settings is None:
            self._user_settings = self.form.settings()
        self._start(Worker(follow_run, str(run_dir), task="follow"), "follow")
        self.dashboard.log(f"following {run_dir}")
        # The run's own settings, greyed: its config.json now (when written yet), then each RunStarted it logs.
        config = Path(run_dir) / "config.json"
        if config.is_file():
            try:
                self._show_followed_config(Config.from_file(config))
            except UserError as e:
                self.dashboard.log(f"the run's settings cannot be shown: {e}")

    def _show_followed_config(self, config: Config | Any) -> None:
        """Fill the greyed form with the followed run's settings (a Config, or the dict a RunStarted carries)."""
        problem = self.form.show_config(config)
        if problem:
            self.dashboard.log(f"the run's settings cannot be shown: {problem}")

    def _start(self, worker: Worker, mode: str) -> None:
        self._push_model()        # the run shown before keeps its newest model
        self.dashboard.clear()
        self.mode = mode
        self._runs_started += 1
        self._run_key = f"{mode}-{self._runs_started}"    # this run's entry in the models list
        self.last_status = None
        self._last_error = ""
        self.worker = worker
        # A run replaced while its thread was ending (following another folder) still has queued events and its
        # `finished` on the way: they belong to that run's entry, never to the dashboard and form of this one.
        key, ended = self._run_key, "not followed" if mode == "follow" else "stopped"
        worker.event.connect(lambda ev, w=worker: self.handle_event(ev) if w is self.worker else None)
        worker.failed.connect(lambda message, details, w=worker: self._on_failed(message, details)
                              if w is self.worker else None)
        worker.finished.connect(lambda w=worker: self._on_finished() if w is self.worker
                                else self.state.update_run(key, status=ended))
        worker.start()
        self._update_buttons()

    def toggle_pause(self) -> None:
        if self.mode != "train" or self.job is None:
            return
        if not self.paused:
            self.job.pause()     # the trainer logs "paused" itself once the step in flight is done
            self.dashboard.log("pause asked for: the trainer stops after its current step")
        else:
            self.job.resume()    # ... and "resumed"
        self.run_buttons.show_paused(self.paused)
        self.dashboard.set_paused(self.paused)
        self.state.update_run(self._run_key, status="paused" if self.paused else "training")

    @property
    def paused(self) -> bool:
        """The run this panel trains is paused (what the Pause/Resume button offers follows it)."""
        return self.mode == "train" and self.job is not None and self.job.paused

    def stop(self) -> None:
        if self.worker is not None and self.worker.is_running():
            if self.job is not None:
                self.job.resume()   # a paused trainer must wake up to see the stop
            self.worker.stop()
            self.stop_button.setEnabled(False)

    def shutdown(self) -> None:
        """Stop the run (the trainer saves a checkpoint), wait for the thread, stop the timer."""
        self.stop()
        if self.worker is not None:
            self.worker.join(120)
        self.dashboard.finish()

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.last_status = "failed"
        self.dashboard.log(f"error: {message}")
        show_error(self.window(), message, details)

    @Slot()
    def _on_finished(self) -> None:
        self._push_model()
        followed = self.mode == "follow"
        self.state.update_run(self._run_key, status=self.last_status or ("not followed" if followed else "stopped"))
        self.dashboard.finish()
        self.mode = "idle"
        self.job = None
        if followed and self._user_settings is not None:   # the form is the user's again ...
            saved, self._user_settings = self._user_settings, None
            self.form.restore_settings(saved)
        if followed:     # ... while the plots stay the followed run's: said above them
            self.dashboard.mark_followed_run_over(self.run_dir or "the followed run",
                                                  (self.last_status or "not followed any more").replace("_", " "))
        self._update_buttons()
        self.runFinished.emit(self.last_status or "stopped")
        self.state.statusMessage.emit(f"training run {(self.last_status or 'stopped').replace('_', ' ')}")

    # ---- events -----------------------------------------------------------------------------------------------------
    @Slot(object)
    def handle_event(self, ev: Any) -> None:
        self.dashboard.show_event(ev)
        if isinstance(ev, SnapshotLoaded):
            self._offer_model(ev.loaded)
        elif isinstance(ev, ModelSnapshot):   # from a producer that did not rebuild it on its thread
            from core.training.checkpoint import from_snapshot

            self._offer_model(from_snapshot(ev))
        elif isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir or self.run_dir
            if self.mode == "follow" and ev.config:
                self._show_followed_config(ev.config)
        elif isinstance(ev, CheckpointSaved):
            self.last_checkpoint = ev.path
        elif isinstance(ev, LogMessage) and ev.level == "error":
            self._last_error = ev.message
        elif isinstance(ev, RunEnded):
            self.last_status = ev.status
            if ev.last_checkpoint:
                self.last_checkpoint = ev.last_checkpoint
            if ev.status == "failed" and self.mode == "train":
                # The Trainer reports its own failures as events (it keeps its caller alive); show them like any
                # worker exception: the reason up front, the traceback it logged behind "details".
                details = self._last_error if "Traceback" in self._last_error else ""
                show_error(self.window(), f"Training failed: {ev.reason}", details)

    def _offer_model(self, loaded: Any) -> None:
        """Put the run's newest snapshot in its models-list entry. When that entry is what the panels show, the
        hand-over waits until the user looks at another panel (hideEvent) or the run ends: each new model makes
        them re-encode / re-project / re-sample, work that would compete with training (and with this dashboard)
        for the CPU while nobody looks at it."""
        entry = self.state.entry_for_run(self._run_key)
        kind = loaded.config.model_kind
        if entry is None:   # its first model: shown at once when nothing of its kind is, or when following training
            reaches_panels = self.state.follow_training or self.state.shown.get(kind) is None
        else:
            reaches_panels = self.state.shown.get(kind) is entry
        self._pending_model = loaded
        if not (reaches_panels and self.isVisible()):
            self._push_model()

    def _push_model(self) -> None:
        loaded, self._pending_model = self._pending_model, None
        if loaded is not None:
            following = self.mode == "follow"
            name = Path(self.run_dir).name if self.run_dir else None
            self.state.update_run(self._run_key, loaded, name=name, source="run folder" if following else "training",
                                  status="following" if following else "training")

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self._push_model()
