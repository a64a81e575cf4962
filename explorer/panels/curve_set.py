"""The training dashboard's plots as one set for the curve tools, and the baseline run drawn under them (W&B's
"compare with a run").

`CurveSet` applies what the user picks in `CurveControls` (smoothing, x axis) to every plot, and draws a baseline:
another run folder's curves (read by `core.runs.history.load_series` on a worker), dashed under the live curve of
the same name, named in the legend. The baseline stays while new runs start, until it is removed or replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from core.errors import UserError
from explorer.panels.tasks import PanelTasks
from explorer.widgets.curve_tools import CurveControls
from explorer.widgets.live_plot import LivePlot
from explorer.worker import Worker

# A run's series (as `load_series` names them) -> (plot, live curve) it is drawn under
BASELINE_CURVES = {"loss": ("loss", "loss"), "recon": ("terms", "recon"), "kl": ("terms", "kl"),
                   "val loss": ("val", "val loss"), "lr": ("lr", "lr"), "perceptual": ("perceptual", "perceptual"),
                   "d_loss": ("adversarial", "d_loss"), "g_adv": ("adversarial", "g_adv"),
                   "adv_weight": ("adv_weight", "adv_weight")}
RECENT_RUNS = 10     # newest run folders of the runs folder offered in the menu


def read_baseline(folder: str) -> tuple[str, dict[str, Any]]:
    """(the run's name, its curves) of a run folder; a UserError when it is not one or has no curves yet."""
    from core.runs.history import is_run_folder, load_series

    path = Path(folder)
    if not path.is_dir() or not is_run_folder(path):
        raise UserError(f"{folder} is not a run folder (it has no metrics.jsonl or config.json): pick a folder "
                        "that a training run wrote")
    series = load_series(path)
    if not any(name in series for name in BASELINE_CURVES):
        raise UserError(f"{path.name} has no curves yet (its metrics.jsonl has no step records)")
    return path.name, series


def recent_run_folders(limit: int = RECENT_RUNS) -> list[Path]:
    """The newest run folders of the user's runs folder (newest first), by their metrics file's time."""
    from core.paths import runs_dir
    from core.runs.history import is_run_folder

    try:
        found = [p for p in runs_dir().iterdir() if p.is_dir() and is_run_folder(p)]
    except OSError:
        return []

    def written(p: Path) -> float:
        try:
            return (p / "metrics.jsonl").stat().st_mtime
        except OSError:
            return 0.0

    return sorted(found, key=written, reverse=True)[:limit]


class CurveSet(QObject):
    def __init__(self, plots: dict[str, LivePlot], controls: CurveControls, owner: QWidget,
                 schedule_redraw: Callable[[], None]) -> None:
        super().__init__(owner)
        self.plots, self.controls, self._owner, self._schedule = plots, controls, owner, schedule_redraw
        self.tasks = PanelTasks(owner)
        self.baseline: str | None = None      # the run folder drawn under the live curves
        self.extra_runs: Callable[[], list[tuple[str, str]]] | None = None   # (name, folder) offered too
        controls.smoothingChanged.connect(self.set_smoothing)
        controls.xAxisChanged.connect(self.set_x_axis)
        controls.baselineRequested.connect(self.ask_baseline)
        controls.baselineCleared.connect(self.clear_baseline)

    def set_smoothing(self, weight: float) -> None:
        """TensorBoard's smoothing weight (0: none) for every smoothed curve, baselines included."""
        for plot in self.plots.values():
            plot.set_smoothing(weight)
        self._schedule()

    def set_x_axis(self, axis: str) -> None:
        """Step, epoch or wall time on every plot's x axis (validation points sit at their epoch's end)."""
        for plot in self.plots.values():
            plot.set_x_axis(axis)
        if self.controls.x_axis != axis:
            self.controls.set_x_axis(axis)     # (its signal comes back here once, with nothing left to do)
        self._schedule()

    # ---- baseline ---------------------------------------------------------------------------------------------------
    def ask_baseline(self) -> None:
        """A menu under the button: the runs folder's newest runs, the models list's runs, or any folder."""
        menu = QMenu(self._owner)
        for name, folder in self.candidates():
            action = QAction(name, menu)
            action.setToolTip(folder)
            action.triggered.connect(lambda _=False, f=folder: self.load_baseline(f))
            menu.addAction(action)
        if menu.actions():
            menu.addSeparator()
        menu.addAction("Run folder...").triggered.connect(self._ask_folder)
        button = self.controls.baseline_button
        menu.exec(button.mapToGlobal(button.rect().bottomLeft()))

    def candidates(self) -> list[tuple[str, str]]:
        runs = [(p.name, str(p)) for p in recent_run_folders()]
        runs += self.extra_runs() if self.extra_runs is not None else []
        return list(dict.fromkeys(runs))

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._owner, "Baseline run folder")
        if folder:
            self.load_baseline(folder)

    def load_baseline(self, folder: str) -> Worker:
        """Read the run's curves on a worker, then draw them (a bad folder: one line in the error dialog)."""
        return self.tasks.start("baseline", read_baseline, folder,
                                on_result=lambda result: self.show_baseline(folder, *result))

    def show_baseline(self, folder: str, name: str, series: dict[str, Any]) -> None:
        self.clear_baseline()
        for key, (plot, curve) in BASELINE_CURVES.items():
            s = series.get(key)
            if s is not None and plot in self.plots:
                self.plots[plot].set_baseline(curve, name, step=s.step, epoch=s.epoch, time=s.time, value=s.value)
        self.baseline = folder
        self.controls.set_baseline_name(name)
        self._schedule()

    def clear_baseline(self) -> None:
        for plot in self.plots.values():
            plot.clear_baselines()
        self.baseline = None
        self.controls.set_baseline_name(None)
        self._schedule()

    def shutdown(self) -> None:
        self.tasks.shutdown()
