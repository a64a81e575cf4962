"""The training dashboard: a config form, Train / Pause / Stop, live plots, sample previews and the run's log.

Training runs `core.train.Trainer.run()` in a `Worker` thread (`TrainJob`, in train_job.py); following a run folder
runs `core.train.follow_run()` the same way, read-only. Event slots only append to the plots' preallocated buffers and
set a flag; a single-shot timer, started by the first event after a redraw, redraws what changed: at most ~30 times
a second, and never while no events arrive (plot rate is not event rate). The model snapshots the trainer yields
each epoch are rebuilt into CPU models on the worker thread and handed to AppState, so the other panels explore the
model while it trains.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.config import PRESETS, Config, DataConfig, DiffusionConfig, TrainConfig, VAEConfig
from core.errors import UserError
from core.events import (
    CheckpointSaved,
    EpochSummary,
    LogMessage,
    ModelSnapshot,
    Preview,
    RunEnded,
    RunStarted,
    StepMetrics,
)
from explorer.panels.train_job import SnapshotLoaded, TrainJob
from explorer.state import AppState
from explorer.widgets.config_form import ConfigForm
from explorer.widgets.dialogs import show_error
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.live_plot import BarPlot, LivePlot
from explorer.worker import Worker

KNOWN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")   # + folder:PATH (core.data is not imported here)
REDRAW_MS = 33
EMA = 0.2   # smoothing of the per-step curves (weight of the newest point; short runs must not lag much)


def _fmt_eta(seconds: float) -> str:
    if not np.isfinite(seconds) or seconds < 0:
        return "--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TrainPanel(QWidget):
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
        self.class_names: list[str] = []
        self._progress_text = ""
        self._progress_value = 0
        self._progress_dirty = False
        self.first_point_at: float | None = None    # perf_counter of the first loss point (benchmark)
        self.train_pressed_at: float | None = None

        # Single-shot, started by the first event after a redraw: at most ~30 redraws a second, and none (no wake-up
        # of the GUI thread at all) while no events arrive, e.g. when paused.
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_controls())
        split.addWidget(self._build_dashboard())
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([360, 900])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self.apply_preset("digits")
        self._update_buttons()

    # ---- building -----------------------------------------------------------------------------------------------
    def _build_controls(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)

        top = QFormLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setToolTip("Fill the form with a named preset (core.config.PRESETS)")
        self.preset_combo.activated.connect(lambda _i: self.apply_preset(self.preset_combo.currentText()))
        top.addRow("Preset", self.preset_combo)
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["vae", "diffusion"])
        self.kind_combo.setToolTip("What to train: a conditional VAE or a class-conditional diffusion model")
        top.addRow("Model", self.kind_combo)
        lay.addLayout(top)

        self.data_form = ConfigForm(DataConfig, choices={"name": KNOWN_DATASETS})
        folder_btn = QPushButton("Image folder...")
        folder_btn.setToolTip("Train on a folder with one subfolder of images per class (folder:PATH)")
        folder_btn.clicked.connect(self._pick_folder)
        self.data_form.layout_.insertRow(1, "", folder_btn)
        self.vae_form = ConfigForm(VAEConfig)
        self.diffusion_form = ConfigForm(DiffusionConfig)
        self.model_stack = QStackedWidget()
        self.model_stack.addWidget(self.vae_form)
        self.model_stack.addWidget(self.diffusion_form)
        self.kind_combo.currentIndexChanged.connect(self.model_stack.setCurrentIndex)
        self.kind_combo.currentIndexChanged.connect(lambda _i: self.validate())
        self.train_form = ConfigForm(TrainConfig)
        self.forms = QTabWidget()
        for title, w in (("Data", self.data_form), ("Model", self.model_stack), ("Training", self.train_form)):
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(w)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            self.forms.addTab(scroll, title)
        lay.addWidget(self.forms, 1)
        for form in (self.data_form, self.vae_form, self.diffusion_form, self.train_form):
            form.changed.connect(self.validate)

        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: rgb(220, 60, 60);")
        lay.addWidget(self.error_label)

        buttons = QGridLayout()
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Start training with these settings (Ctrl+T)")
        self.train_button.clicked.connect(self.start_training)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; a checkpoint is saved")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume from checkpoint...")
        self.resume_button.clicked.connect(self._pick_resume)
        buttons.addWidget(self.train_button, 0, 0)
        buttons.addWidget(self.pause_button, 0, 1)
        buttons.addWidget(self.stop_button, 0, 2)
        buttons.addWidget(self.resume_button, 1, 0, 1, 3)
        lay.addLayout(buttons)
        box.setMinimumWidth(300)
        return box

    def _build_dashboard(self) -> QWidget:
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)

        self.banner = QWidget()
        banner_lay = QHBoxLayout(self.banner)
        banner_lay.setContentsMargins(8, 4, 8, 4)
        self.banner_label = QLabel("")
        self.banner_label.setWordWrap(True)
        stop_follow = QPushButton("Stop following")
        stop_follow.clicked.connect(self.stop)
        banner_lay.addWidget(self.banner_label, 1)
        banner_lay.addWidget(stop_follow)
        self.banner.setStyleSheet("background-color: rgba(42, 130, 218, 60); border-radius: 4px;")
        self.banner.setVisible(False)
        lay.addWidget(self.banner)

        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("not started")
        mono = QFont()
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Logarithmic y axis on the loss plots")
        self.log_scale.toggled.connect(self.set_log_scale)
        row.addWidget(self.progress, 1)
        row.addWidget(self.progress_label)
        row.addWidget(self.log_scale)
        lay.addLayout(row)

        self.plots: dict[str, LivePlot] = {
            "loss": LivePlot("Loss (nats/image)"),
            "terms": LivePlot("Recon and KL"),
            "val": LivePlot("Validation loss", x_label="epoch"),
            "lr": LivePlot("Learning rate"),
        }
        self.plots["loss"].add_curve("loss", ema=EMA)
        self.plots["terms"].add_curve("recon", ema=EMA)
        self.plots["terms"].add_curve("kl", ema=EMA)
        self.plots["val"].add_curve("val loss")
        self.plots["val"].add_curve("train loss")
        self.plots["lr"].add_curve("lr")
        self.kl_bars = BarPlot("KL per dimension (val)")
        grid_w = QWidget()
        grid = QGridLayout(grid_w)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.plots["loss"], 0, 0)
        grid.addWidget(self.plots["terms"], 0, 1)
        grid.addWidget(self.plots["val"], 0, 2)
        grid.addWidget(self.kl_bars, 1, 0)
        grid.addWidget(self.plots["lr"], 1, 1)

        previews = QTabWidget()
        self.samples_grid = ImageGrid()
        self.samples_grid.setToolTip("Class-conditional samples from the latest snapshot (one row per class)")
        self.recon_grid = ImageGrid()
        self.recon_grid.setToolTip("Validation images (top) and their reconstructions (bottom)")
        previews.addTab(self.samples_grid, "Samples")
        previews.addTab(self.recon_grid, "Reconstructions")
        grid.addWidget(previews, 1, 2)
        # Equal cells: the previews must not grow at the plots' expense (an image grid would like to be large).
        previews.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        for i in range(3):
            grid.setColumnStretch(i, 1)
        for i in range(2):
            grid.setRowStretch(i, 1)
        # The learning rate spans decades under schedules, and a constant rate would sit on a ±0.5 axis otherwise.
        self.plots["lr"].set_log_y(True)

        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("The run's messages appear here.")
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(grid_w)
        vsplit.addWidget(self.log_view)
        vsplit.setStretchFactor(0, 4)
        vsplit.setStretchFactor(1, 1)
        vsplit.setSizes([600, 120])
        lay.addWidget(vsplit, 1)
        return box

    # ---- form -------------------------------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        cfg = PRESETS[name]
        self.preset_combo.setCurrentText(name)
        self.set_config(cfg)

    def set_config(self, cfg: Config) -> None:
        self.data_form.set_values(cfg.data)
        if cfg.model.kind == "diffusion":
            self.diffusion_form.set_values(cfg.model)
        else:
            self.vae_form.set_values(cfg.model)
        self.kind_combo.setCurrentText(cfg.model.kind)
        self.train_form.set_values(cfg.train)
        self.validate()

    def model_form(self) -> ConfigForm:
        return self.diffusion_form if self.kind_combo.currentText() == "diffusion" else self.vae_form

    def config(self) -> Config:
        """The form's configuration; UserError naming the first invalid value."""
        return Config(data=self.data_form.value(), model=self.model_form().value(), train=self.train_form.value())

    def validate(self) -> str:
        """Check the form now; returns the problem ("" when valid) and enables Train accordingly."""
        problem = ""
        for form in (self.data_form, self.model_form(), self.train_form):
            problem = problem or form.error
        if not problem:
            try:
                cfg = self.config()
                name = cfg.data.name
                if name.startswith("folder:") and not Path(name[len("folder:"):]).expanduser().is_dir():
                    problem = f"the image folder {name[len('folder:'):]!r} does not exist: pick one with Image folder"
                    self.data_form.mark("name", problem)
                elif not name.startswith("folder:") and name not in KNOWN_DATASETS:
                    problem = f"unknown dataset {name!r}; choose {', '.join(KNOWN_DATASETS)} or folder:PATH"
                    self.data_form.mark("name", problem)
            except UserError as e:
                problem = str(e)
        self.error_label.setText(problem)
        self.error_label.setVisible(bool(problem))
        self._problem = problem
        self._update_buttons()
        return problem

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder (one subfolder per class)")
        if path:
            self.data_form.set_field("name", f"folder:{path}")

    def _pick_resume(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.start_training(resume=path)

    # ---- controls ---------------------------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.mode == "train" and self.worker is not None and self.worker.is_running()

    def is_busy(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _update_buttons(self) -> None:
        busy = self.mode != "idle"
        following = self.mode == "follow"
        self.train_button.setEnabled(not busy and not getattr(self, "_problem", ""))
        self.resume_button.setEnabled(not busy)
        self.pause_button.setEnabled(self.mode == "train")
        self.stop_button.setEnabled(busy)
        for w in (self.forms, self.preset_combo, self.kind_combo):
            w.setEnabled(not busy)
        self.banner.setVisible(following)
        if not busy:
            self.pause_button.setText("Pause")

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
        from core.paths import runs_dir

        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(cfg.data.name.replace("folder:", "")).name or "data")
        run_dir = runs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{cfg.model.kind}"
        n = 1
        while run_dir.exists():
            run_dir = run_dir.with_name(f"{run_dir.name.rsplit('~', 1)[0]}~{n}")
            n += 1
        if resume:
            run_dir = None   # the Trainer continues in the checkpoint's own run folder (or writes none)
        self.job = TrainJob(cfg, run_dir=run_dir, resume=resume, threads=threads)
        self.train_pressed_at = time.perf_counter()
        self.first_point_at = None
        self._start(Worker(self.job.events, stop=self.job.stop, task="train"), "train")
        where = f"run folder {run_dir}" if run_dir else f"resuming {resume}"
        how = f"{threads} thread(s)" if threads else "torch's default threads"
        self.log(f"training {cfg.model.kind} on {cfg.data.name} with {how}; {where}")
        return True

    def follow_run(self, run_dir: str) -> None:
        """Show a run folder another process writes, live and read-only."""
        if self.mode != "idle":
            self.stop()
            if self.worker is not None:
                self.worker.join(30)
        from core.train import follow_run

        self.job = None
        self.run_dir = str(run_dir)
        self.banner_label.setText(f"Following {run_dir} (read-only): the dashboard shows what that run writes.")
        self._start(Worker(follow_run, str(run_dir), task="follow"), "follow")
        self.log(f"following {run_dir}")

    def _start(self, worker: Worker, mode: str) -> None:
        self.clear_dashboard()
        self.mode = mode
        self.last_status = None
        self._last_error = ""
        self.worker = worker
        worker.event.connect(self.handle_event)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        worker.start()
        self._update_buttons()

    def toggle_pause(self) -> None:
        if self.mode != "train" or self.job is None:
            return
        if self.pause_button.text() == "Pause":
            self.job.pause()
            self.pause_button.setText("Resume")
            self.log("paused")
        else:
            self.job.resume()
            self.pause_button.setText("Pause")
            self.log("resumed")

    @property
    def paused(self) -> bool:
        return self.mode == "train" and self.pause_button.text() == "Resume"

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
        self._redraw_timer.stop()

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.last_status = "failed"
        self.log(f"error: {message}")
        show_error(self.window(), message, details)

    @Slot()
    def _on_finished(self) -> None:
        self._push_model()
        self.redraw()
        self._redraw_timer.stop()
        self.mode = "idle"
        self.job = None
        self._update_buttons()
        self.runFinished.emit(self.last_status or "stopped")

    # ---- events -----------------------------------------------------------------------------------------------------
    @Slot(object)
    def handle_event(self, ev: Any) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()
        if isinstance(ev, StepMetrics):
            self._on_step(ev)
        elif isinstance(ev, EpochSummary):
            self._on_epoch(ev)
        elif isinstance(ev, Preview):
            self._on_preview(ev)
        elif isinstance(ev, SnapshotLoaded):
            self._offer_model(ev.loaded)
        elif isinstance(ev, ModelSnapshot):   # from a producer that did not rebuild it on its thread
            from core.checkpoint import from_snapshot

            self._offer_model(from_snapshot(ev))
        elif isinstance(ev, RunStarted):
            self._on_started(ev)
        elif isinstance(ev, CheckpointSaved):
            self.last_checkpoint = ev.path
            self.log(f"checkpoint saved ({ev.tag}, epoch {ev.epoch}, step {ev.step}): {ev.path}")
        elif isinstance(ev, LogMessage):
            self.log(ev.message if ev.level == "info" else f"{ev.level}: {ev.message}")
            if ev.level == "error":
                self._last_error = ev.message
        elif isinstance(ev, RunEnded):
            self.last_status = ev.status
            total = getattr(self, "_total_steps", 0)
            fraction = 1.0 if ev.status == "completed" else ev.step / max(1, total)
            self._set_progress(fraction, f"{ev.status.replace('_', ' ')} at epoch {ev.epoch} · step {ev.step}"
                                         f"{'/' + str(total) if total else ''}")
            best = f", best val {ev.best_val:.4g}" if ev.best_val is not None else ""
            self.log(f"run {ev.status} at epoch {ev.epoch}, step {ev.step}: {ev.reason}{best}")
            if ev.last_checkpoint:
                self.last_checkpoint = ev.last_checkpoint
            if ev.status == "failed" and self.mode == "train":
                # The Trainer reports its own failures as events (it keeps its caller alive); show them like any
                # worker exception: the reason up front, the traceback it logged behind "details".
                details = self._last_error if "Traceback" in self._last_error else ""
                show_error(self.window(), f"Training failed: {ev.reason}", details)

    def _offer_model(self, loaded: Any) -> None:
        """Hand a snapshot to the other panels now if one of them is being looked at, else when the user switches
        to one (hideEvent) or the run ends: each new model makes them re-encode / re-project / re-sample, work that
        would compete with training (and with this dashboard) for the CPU while nobody looks at it."""
        self._pending_model = loaded
        if not self.isVisible():
            self._push_model()

    def _push_model(self) -> None:
        loaded, self._pending_model = getattr(self, "_pending_model", None), None
        if loaded is not None:
            self.state.set_model(loaded)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - the user switched to another panel
        super().hideEvent(event)
        self._push_model()

    def _on_started(self, ev: RunStarted) -> None:
        self.run_dir = ev.run_dir or self.run_dir
        self.class_names = list((ev.meta or {}).get("class_names", []))
        self._total_steps = ev.total_steps
        self._epochs = int((ev.config or {}).get("train", {}).get("epochs", 0))
        resumed = f", resumed at step {ev.start_step}" if ev.start_step else ""
        self.log(f"run started on {ev.device}: {ev.total_steps} steps, {ev.steps_per_epoch} per epoch{resumed}")
        self._set_progress(ev.start_step / max(1, ev.total_steps), f"step {ev.start_step}/{ev.total_steps}")

    def _on_step(self, ev: StepMetrics) -> None:
        m = ev.metrics
        if "loss" in m:
            self.plots["loss"].append("loss", ev.step, float(m["loss"]))
            if self.first_point_at is None:
                self.first_point_at = time.perf_counter()
        for key in ("recon", "kl"):
            if key in m:
                self.plots["terms"].append(key, ev.step, float(m[key]))
        self.plots["lr"].append("lr", ev.step, float(ev.lr))
        epochs = getattr(self, "_epochs", 0)
        total = getattr(self, "_total_steps", 0)
        text = (f"epoch {ev.epoch}{'/' + str(epochs) if epochs else ''} · step {ev.step}"
                f"{'/' + str(total) if total else ''} · {ev.images_per_s:,.0f} img/s · ETA {_fmt_eta(ev.eta_s)}")
        self._set_progress(ev.progress, text)

    def _on_epoch(self, ev: EpochSummary) -> None:
        if "loss" in ev.val:
            self.plots["val"].append("val loss", ev.epoch, float(ev.val["loss"]))
        if "loss" in ev.train:
            self.plots["val"].append("train loss", ev.epoch, float(ev.train["loss"]))
        if ev.kl_per_dim is not None:
            self.kl_bars.set_values(ev.kl_per_dim)
        val = ", ".join(f"{k} {v:.4g}" for k, v in ev.val.items())
        self.log(f"epoch {ev.epoch} (step {ev.step}, {ev.elapsed_s:.1f} s): val {val}{' — best' if ev.is_best else ''}")

    def _on_preview(self, ev: Preview) -> None:
        labels = np.asarray(ev.sample_labels)
        classes = list(dict.fromkeys(labels.tolist()))    # in order of appearance
        per_class = max(1, len(labels) // max(1, len(classes)))
        names = [self.class_names[c] if c < len(self.class_names) else str(c) for c in classes]
        self.samples_grid.set_images(ev.samples, columns=per_class, row_labels=names)
        if ev.originals is not None and ev.reconstructions is not None:
            both = np.concatenate([ev.originals, ev.reconstructions])
            self.recon_grid.set_images(both, columns=len(ev.originals), row_labels=["val", "recon"])

    def _set_progress(self, fraction: float, text: str) -> None:
        self._progress_value = int(round(1000 * min(1.0, max(0.0, fraction))))
        self._progress_text = text
        self._progress_dirty = True

    # ---- drawing ----------------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Push what changed since the last tick to the plots (the redraw timer's slot)."""
        for plot in self.plots.values():
            plot.redraw()
        self.kl_bars.redraw()
        if self._progress_dirty:
            self._progress_dirty = False
            self.progress.setValue(self._progress_value)
            self.progress_label.setText(self._progress_text)

    def set_log_scale(self, on: bool) -> None:
        for key in ("loss", "terms", "val"):
            self.plots[key].set_log_y(on)

    def clear_dashboard(self) -> None:
        for plot in self.plots.values():
            plot.clear_data()
        self.kl_bars.clear_data()
        self.samples_grid.clear()
        self.recon_grid.clear()
        self._set_progress(0.0, "starting...")
        self.redraw()

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def export_png(self, path: str) -> None:
        if not self.grab().save(path, "PNG"):
            raise UserError(f"could not write {path}: check the folder exists and is writable")
