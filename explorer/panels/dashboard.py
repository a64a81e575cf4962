"""What a run looks like: a progress bar with ETA, live plots, sample previews and the run's log.

`RunDashboard.show_event` takes the run's events (from a training worker or a followed run folder) and only appends
to the plots' preallocated buffers and marks what changed; a single-shot timer, started by the first event after a
redraw, draws it: at most ~30 times a second, and never while no events arrive (plot rate is not event rate). It
controls nothing: the Train panel owns the run and decides what the events mean for it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.training.events import CheckpointSaved, EpochSummary, LogMessage, Preview, RunEnded, RunStarted, StepMetrics
from explorer.panels.curve_set import CurveSet
from explorer.widgets.curve_tools import CurveControls
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.live_plot import BarPlot, LivePlot

REDRAW_MS = 33
# Step metrics with a plot of their own: a VAE-GAN's discriminator and generator losses, and its adaptive weight;
# a VAE's perceptual loss (on its own axis: a few units beside recon's tens of nats).
ROW_3_CURVES = {"d_loss": "adversarial", "g_adv": "adversarial", "adv_weight": "adv_weight",
                "perceptual": "perceptual"}
ROW_3 = ("kl_layers", "adversarial", "adv_weight", "perceptual")   # shown only for the runs that log their curves


def format_eta(seconds: float) -> str:
    if not np.isfinite(seconds) or seconds < 0:
        return "--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def format_stamp(at: float | None = None) -> str:
    """A log line's time: H:M:S today, with the date before that (a followed run's history may be days old); now when
    `at` is None or not a time this machine can show."""
    now = time.localtime()
    try:
        when = now if at is None else time.localtime(at)
    except (OverflowError, OSError, ValueError):
        when = now
    return time.strftime("%H:%M:%S" if when[:3] == now[:3] else "%Y-%m-%d %H:%M:%S", when)


class RunDashboard(QWidget):
    stopFollowing = Signal()     # the "Stop following" button on the read-only banner

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_names: list[str] = []
        self.total_steps = 0
        self.epochs = 0
        self._progress_text = ""
        self._progress_value = 0
        self._progress_dirty = False
        self._position = ""          # "epoch 3/10 · step 40/100" of the newest step
        self._paused = False         # the user asked the run to pause
        self._pause_reached = False  # ... and the trainer said it has (its "paused" log line): steps have stopped

        # Single-shot, started by the first event after a redraw: at most ~30 redraws a second, and none (no wake-up
        # of the GUI thread at all) while no events arrive, e.g. when paused.
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._build_banner())
        # Under a followed run that ended: the plots are that run's while the form beside them is the user's again.
        self.shown_note = QLabel("")
        self.shown_note.setWordWrap(True)
        self.shown_note.setStyleSheet("color: #a05a00;")
        self.shown_note.setVisible(False)
        lay.addWidget(self.shown_note)
        lay.addLayout(self._build_progress_row())
        lay.addWidget(self.curve_controls)
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(self._build_plots())
        self.curves = CurveSet(self.plots, self.curve_controls, self, self._schedule_redraw)   # smoothing, x, baseline
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("The run's messages appear here.")
        vsplit.addWidget(self.log_view)
        vsplit.setStretchFactor(0, 4)
        vsplit.setStretchFactor(1, 1)
        vsplit.setSizes([600, 120])
        lay.addWidget(vsplit, 1)

    # ---- building -----------------------------------------------------------------------------------------------
    def _build_banner(self) -> QWidget:
        self.banner = QWidget()
        banner_lay = QHBoxLayout(self.banner)
        banner_lay.setContentsMargins(8, 4, 8, 4)
        self.banner_label = QLabel("")
        self.banner_label.setWordWrap(True)
        stop_follow = QPushButton("Stop following")
        stop_follow.clicked.connect(self.stopFollowing)
        banner_lay.addWidget(self.banner_label, 1)
        banner_lay.addWidget(stop_follow)
        self.banner.setStyleSheet("background-color: rgba(42, 130, 218, 60); border-radius: 4px;")
        self.banner.setVisible(False)
        return self.banner

    def _build_progress_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress_label = QLabel("not started")
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Logarithmic y axis on the loss plots (each plot also has its own 'log' button)")
        self.log_scale.toggled.connect(self.set_log_scale)
        self.curve_controls = CurveControls()
        row.addWidget(self.progress, 1)
        row.addWidget(self.progress_label)
        row.addWidget(self.log_scale)
        return row

    def _build_plots(self) -> QWidget:
        self.plots: dict[str, LivePlot] = {
            "loss": LivePlot("Loss (nats/image)"),
            "terms": LivePlot("Recon and KL (right axis)"),
            "val": LivePlot("Validation loss", x_label="epoch"),
            "lr": LivePlot("Learning rate"),
            "kl_layers": LivePlot("KL per layer"),
            "adversarial": LivePlot("Adversarial (hinge)"),
            "adv_weight": LivePlot("Adaptive adversarial weight"),
            "perceptual": LivePlot("Perceptual loss"),
        }
        self.plots["loss"].add_curve("loss", smooth=True)
        self.plots["terms"].add_curve("recon", smooth=True)
        self.plots["terms"].add_curve("kl", smooth=True, right_axis=True)   # a few nats beside recon's tens
        self.plots["val"].add_curve("val loss")
        self.plots["val"].add_curve("train loss")
        self.plots["lr"].add_curve("lr")
        self.plots["adversarial"].add_curve("d_loss", smooth=True)
        self.plots["adversarial"].add_curve("g_adv", smooth=True)
        self.plots["adv_weight"].add_curve("adv_weight", smooth=True)
        self.plots["perceptual"].add_curve("perceptual", smooth=True)
        # The learning rate spans decades under schedules, and a constant rate would sit on a ±0.5 axis otherwise.
        self.plots["lr"].set_log_y(True)
        self.kl_bars = BarPlot("KL per dimension (val)")

        box = QWidget()
        grid = QGridLayout(box)
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
        # A third row for a hierarchical VAE's KL per layer, a VAE-GAN's curves and a perceptual loss, each shown when
        # a run logs them (`_show_row_3` places them).
        for key in ROW_3:
            self.plots[key].setParent(box)
        self._plot_grid = grid
        self._show_row_3(set())
        # Equal cells: the previews must not grow at the plots' expense (an image grid would like to be large).
        previews.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        for i in range(3):
            grid.setColumnStretch(i, 1)
        for i in range(2):
            grid.setRowStretch(i, 1)
        return box

    # ---- events -------------------------------------------------------------------------------------------------
    def show_event(self, ev: Any) -> None:
        """Record what the event shows; drawn by the next redraw tick. Events it does not show are ignored."""
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()
        if isinstance(ev, StepMetrics):
            self._on_step(ev)
        elif isinstance(ev, EpochSummary):
            self._on_epoch(ev)
        elif isinstance(ev, Preview):
            self._on_preview(ev)
        elif isinstance(ev, RunStarted):
            self._on_started(ev)
        elif isinstance(ev, CheckpointSaved):
            self.log(f"checkpoint saved ({ev.tag}, epoch {ev.epoch}, step {ev.step}): {ev.path}", at=ev.time)
        elif isinstance(ev, LogMessage):
            if self._paused and ev.level == "info" and ev.message == "paused":   # the trainer really stopped stepping
                self._pause_reached = True
                self._set_progress(self._progress_value / 1000, f"paused · {self._position_or_waiting()}")
            self.log(ev.message if ev.level == "info" else f"{ev.level}: {ev.message}", at=ev.time)
        elif isinstance(ev, RunEnded):
            self._on_ended(ev)

    def _on_started(self, ev: RunStarted) -> None:
        self.class_names = list((ev.meta or {}).get("class_names", []))
        self.total_steps = ev.total_steps
        self.epochs = int((ev.config or {}).get("train", {}).get("epochs", 0))
        resumed = f", resumed at step {ev.start_step}" if ev.start_step else ""
        self.log(f"run started on {ev.device}: {ev.total_steps} steps, {ev.steps_per_epoch} per epoch{resumed}",
                 at=ev.time)
        self._position = f"step {ev.start_step}/{ev.total_steps}"
        for plot in self.plots.values():    # wall time counts from the run's start (a resumed run: this start)
            plot.time_origin = ev.time if ev.time is not None else time.time()
        self._set_progress(ev.start_step / max(1, ev.total_steps), self._position)

    def _on_step(self, ev: StepMetrics) -> None:
        m = ev.metrics
        at = {"epoch": ev.epoch, "time": ev.time if ev.time is not None else time.time()}
        if "loss" in m:
            self.plots["loss"].append("loss", ev.step, float(m["loss"]), **at)
        for key in ("recon", "kl"):
            if key in m:
                self.plots["terms"].append(key, ev.step, float(m[key]), **at)
        for key, value in m.items():
            if key.startswith("kl_"):     # a hierarchical VAE's KL of each layer (kl_z1, kl_z2, ...)
                plot = "kl_layers"
                if key not in self.plots[plot].series:
                    self.plots[plot].add_curve(key, smooth=True)
            elif key in ROW_3_CURVES:
                plot = ROW_3_CURVES[key]
            else:
                continue
            if plot not in self._row_3_shown:
                self._show_row_3(self._row_3_shown | {plot})
            self.plots[plot].append(key, ev.step, float(value), **at)
        self.plots["lr"].append("lr", ev.step, float(ev.lr), **at)
        epochs, total = self.epochs, self.total_steps
        self._position = (f"epoch {ev.epoch}{'/' + str(epochs) if epochs else ''} · step {ev.step}"
                          f"{'/' + str(total) if total else ''}")
        if self._paused:   # a step that was in flight when pause was asked for: its speed and ETA are over
            text = f"{'paused' if self._pause_reached else 'pausing after this step'} · {self._position}"
        else:
            text = f"{self._position} · {ev.images_per_s:,.0f} img/s · ETA {format_eta(ev.eta_s)}"
        self._set_progress(ev.progress, text)

    def set_paused(self, paused: bool) -> None:
        """The user asked the run to pause (True) or to go on (False). The header says "pausing" until the trainer's
        own "paused" line arrives (it finishes the step in flight, which on a busy CPU can take seconds), then
        "paused"; either replaces the speed and ETA. Live numbers come back with the first step after resuming."""
        self._paused, self._pause_reached = paused, False
        state = "pausing after this step" if paused else "resumed"
        self._set_progress(self._progress_value / 1000, f"{state} · {self._position_or_waiting()}")
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def _position_or_waiting(self) -> str:
        return self._position or "waiting for the first step"

    def _on_epoch(self, ev: EpochSummary) -> None:
        at = {"step": ev.step, "time": ev.time if ev.time is not None else time.time()}
        if "loss" in ev.val:
            self.plots["val"].append("val loss", ev.epoch, float(ev.val["loss"]), **at)
        if "loss" in ev.train:
            self.plots["val"].append("train loss", ev.epoch, float(ev.train["loss"]), **at)
        if ev.kl_per_dim is not None:
            self.kl_bars.set_values(ev.kl_per_dim)
        val = ", ".join(f"{k} {v:.4g}" for k, v in ev.val.items())
        self.log(f"epoch {ev.epoch} (step {ev.step}, {ev.elapsed_s:.1f} s): val {val}{' — best' if ev.is_best else ''}",
                 at=ev.time)

    def _on_preview(self, ev: Preview) -> None:
        labels = np.asarray(ev.sample_labels)
        classes = list(dict.fromkeys(labels.tolist()))    # in order of appearance
        per_class = max(1, len(labels) // max(1, len(classes)))
        names = [self.class_names[c] if c < len(self.class_names) else str(c) for c in classes]
        self.samples_grid.set_images(ev.samples, columns=per_class, row_labels=names)
        if ev.originals is not None and ev.reconstructions is not None:
            both = np.concatenate([ev.originals, ev.reconstructions])
            self.recon_grid.set_images(both, columns=len(ev.originals), row_labels=["val", "recon"])

    def _on_ended(self, ev: RunEnded) -> None:
        self._paused = self._pause_reached = False
        total = self.total_steps
        # Full when completed, even if the last logged step came before the run's last one.
        fraction = 1.0 if ev.status == "completed" else ev.step / max(1, total)
        self._set_progress(fraction, f"{ev.status.replace('_', ' ')} at epoch {ev.epoch} · step {ev.step}"
                                     f"{'/' + str(total) if total else ''}")
        best = f", best val {ev.best_val:.4g}" if ev.best_val is not None else ""
        self.log(f"run {ev.status} at epoch {ev.epoch}, step {ev.step}: {ev.reason}{best}", at=ev.time)

    def _set_progress(self, fraction: float, text: str) -> None:
        self._progress_value = int(round(1000 * min(1.0, max(0.0, fraction))))
        self._progress_text = text
        self._progress_dirty = True

    # ---- drawing ------------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Push what changed since the last tick to the plots (the redraw timer's slot)."""
        for plot in self.plots.values():
            plot.redraw()
        self.kl_bars.redraw()
        if self._progress_dirty:
            self._progress_dirty = False
            self.progress.setValue(self._progress_value)
            self.progress_label.setText(self._progress_text)

    def finish(self) -> None:
        """The run's events are over: draw what is left and stop the timer."""
        self.redraw()
        self._redraw_timer.stop()
        self.curves.shutdown()

    def _show_row_3(self, shown: set[str]) -> None:
        """Show these plots of the third row side by side from the left (the others hidden and out of the grid; the row
        takes no room when none is shown)."""
        self._row_3_shown = shown
        for key in ROW_3:
            self._plot_grid.removeWidget(self.plots[key])
        for column, key in enumerate(k for k in ROW_3 if k in shown):
            self._plot_grid.addWidget(self.plots[key], 2, column)
        for key in ROW_3:
            self.plots[key].setVisible(key in shown)
        self._plot_grid.setRowStretch(2, 1 if shown else 0)

    def set_log_scale(self, on: bool) -> None:
        for key in ("loss", "terms", "val", "kl_layers"):
            self.plots[key].set_log_y(on)

    def _schedule_redraw(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def set_following(self, run_dir: str | None) -> None:
        """Show (a folder) or hide (None) the read-only banner of a followed run."""
        if run_dir is not None:
            self.banner_label.setText(f"Following {run_dir} (read-only): the dashboard shows what that run writes.")
        self.banner.setVisible(run_dir is not None)

    def mark_followed_run_over(self, run_dir: str, status: str) -> None:
        """The followed run ended (or is no longer followed): say whose plots these are, as the form is not theirs."""
        self.shown_note.setText(f"These plots and this log are {run_dir}'s (followed read-only, {status}); the "
                                "settings beside them are yours again.")
        self.shown_note.setVisible(True)

    def clear(self) -> None:
        self.shown_note.setVisible(False)
        for plot in self.plots.values():
            plot.clear_data()
        for name in list(self.plots["kl_layers"].series):
            self.plots["kl_layers"].remove_curve(name)   # the next run may have other layers, or none
        self._show_row_3(set())
        self.kl_bars.clear_data()
        self.samples_grid.clear()
        self.recon_grid.clear()
        self._position, self._paused, self._pause_reached = "", False, False
        self.log_view.clear()       # a new run's log: lines of the run shown before would be read as this one's
        self._set_progress(0.0, "starting...")
        self.redraw()

    def log(self, text: str, *, at: float | None = None) -> None:
        """Append a line stamped with `at` (epoch seconds: when a followed run wrote it), or with now."""
        self.log_view.appendPlainText(f"{format_stamp(at)}  {text}")
