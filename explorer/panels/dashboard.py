"""What a run looks like: a progress bar with ETA, live plots, sample previews and the run's log.

`RunDashboard.show_event` takes the run's events (from a training worker or a followed run folder) and only appends
to the plots' preallocated buffers and marks what changed; a single-shot timer, started by the first event after a
redraw, draws it: at most ~30 ticks a second, one waiting plot per tick, never while no events arrive (plot rate is not
event rate) nor while hidden. It controls nothing: the Train panel owns the run and decides what the events mean for it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core.training.events import CheckpointSaved, EpochSummary, LogMessage, Preview, RunEnded, RunStarted, StepMetrics
from explorer.panels.curve_set import CurveSet
from explorer.widgets.curve_tools import CurveControls
from explorer.widgets.elided_label import ElidedLabel
from explorer.widgets.training_plots import TrainingPlots

REDRAW_MS = 33
PLOTS_PER_TICK = 1    # plots redrawn per tick (TrainingPlots.redraw says why)


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
        self._redraw_timer.timeout.connect(self._redraw_tick)

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
        # Elided: its text ("epoch · step · img/s · ETA") changes length with every step, and a plain label's changing
        # minimum width re-laid the panel out, resizing every plot by 2-3 px and repainting all of them at once (a
        # 75-110 ms stall of the event loop every few seconds of training, bench/bench_gui_responsiveness.py).
        self.progress_label = ElidedLabel("not started")
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.setToolTip("Logarithmic y axis on the loss plots (each plot also has its own 'log' button)")
        self.log_scale.toggled.connect(self.set_log_scale)
        self.curve_controls = CurveControls()
        row.addWidget(self.progress, 1)
        row.addWidget(self.progress_label)
        row.addWidget(self.log_scale)
        return row

    def _build_plots(self) -> QWidget:
        self.training_plots = TrainingPlots()
        tp = self.training_plots       # its parts by their names here too (the train panel and tests read them)
        self.plots, self.kl_bars = tp.plots, tp.kl_bars
        self.samples_grid, self.recon_grid = tp.samples_grid, tp.recon_grid
        return tp

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
        self.training_plots.set_time_origin(ev.time if ev.time is not None else time.time())
        self._set_progress(ev.start_step / max(1, ev.total_steps), self._position)

    def _on_step(self, ev: StepMetrics) -> None:
        self.training_plots.append_step(ev.step, ev.metrics, ev.lr, epoch=ev.epoch,
                                        time=ev.time if ev.time is not None else time.time(),
                                        grad_norm=ev.grad_norm, skipped_steps=ev.skipped_steps)
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
        self.training_plots.append_epoch(ev, time=ev.time if ev.time is not None else time.time())
        val = ", ".join(f"{k} {v:.4g}" for k, v in ev.val.items())
        self.log(f"epoch {ev.epoch} (step {ev.step}, {ev.elapsed_s:.1f} s): val {val}{' — best' if ev.is_best else ''}",
                 at=ev.time)

    def _on_preview(self, ev: Preview) -> None:
        self.training_plots.show_preview(ev, self.class_names)

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
        """Push everything that changed to the plots and the progress line at once."""
        self.training_plots.redraw()
        self._draw_progress()

    def _draw_progress(self) -> None:
        if self._progress_dirty:
            self._progress_dirty = False
            self.progress.setValue(self._progress_value)
            self.progress_label.setText(self._progress_text)

    def _redraw_tick(self) -> None:
        """The timer's slot: the progress line and one plot (`TrainingPlots.redraw`); again next tick while plots wait.
        Hidden (another tab shown, the window closed) it draws nothing: `showEvent` draws what waits."""
        if not self.isVisible():
            return
        if self.training_plots.redraw(limit=PLOTS_PER_TICK):
            self._redraw_timer.start()
        self._draw_progress()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._schedule_redraw()

    def finish(self) -> None:
        """The run's events are over: draw what is left and stop the timer."""
        self.redraw()
        self._redraw_timer.stop()
        self.curves.shutdown()

    def set_log_scale(self, on: bool) -> None:
        self.training_plots.set_log_scale(on)

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
        self.training_plots.clear()
        self._position, self._paused, self._pause_reached = "", False, False
        self.log_view.clear()       # a new run's log: lines of the run shown before would be read as this one's
        self._set_progress(0.0, "starting...")
        self.redraw()

    def log(self, text: str, *, at: float | None = None) -> None:
        """Append a line stamped with `at` (epoch seconds: when a followed run wrote it), or with now."""
        self.log_view.appendPlainText(f"{format_stamp(at)}  {text}")
