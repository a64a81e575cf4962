"""`PanelTasks`: a panel's background work in one place (Orange3's `ConcurrentWidgetMixin` is the model).

A panel names each kind of work it does ("encode", "projection", "grid", "row" ...) and starts it with
`tasks.start(name, target, *args, on_result=..., progress=bar, status=label.setText)`. The helper

- runs `target` on an `explorer.worker.Worker` (its `should_stop` / `progress` parameters are supplied);
- lets the newest request win: starting a task stops the running one of the same name, and nothing of a superseded
  or cancelled task (result, event, failure) reaches the panel;
- drives a progress bar: busy until the first `Progress` event, then its done / total; when the task ends the bar is
  full, or empty when it was cancelled or failed (`explorer.worker.end_progress`); a bar shared by two tasks (encode,
  then project) is ended by the last of them; a `progress_format` with "{eta}" shows the time left, estimated from
  the rate so far (after a few seconds, so the first noisy steps do not show a wild guess);
- routes failures to one error path: `status("failed: <message>")` and the app's error dialog (a `UserError` is its
  message alone, a bug keeps its traceback behind "Show Details...");
- tells the panel when a task is over (`on_finished(stopped)`) and whenever it becomes busy or idle (`busyChanged`);
- `cancel(name)` / `cancel_all()` stop work, `shutdown()` stops and joins it all (window close).

Everything it calls back runs on the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar, QWidget

from core.training.events import Progress
from explorer.worker import Worker, end_progress


@dataclass(eq=False)
class _Task:
    name: str
    worker: Worker
    on_result: Callable[[Any], None] | None
    on_event: Callable[[Any], None] | None
    on_failed: Callable[[str, str], None] | None
    on_finished: Callable[[bool], None] | None
    progress: QProgressBar | None
    status: Callable[[str], None] | None
    progress_format: str | None
    error_dialog: bool
    failed: bool = False
    started: float = field(default_factory=lambda: _now())


_now = time.monotonic            # the clock of the time-left estimates (tests replace it)
ETA_AFTER_S = 3.0                # no estimate before this much of the task has run


def time_left(elapsed: float, done: float, total: float) -> str:
    """" · ~25 s left" from the rate so far, or "" while too early to tell (or when done)."""
    if elapsed < ETA_AFTER_S or done <= 0 or done >= total:
        return ""
    left = elapsed * (total - done) / done
    return f" · ~{max(1, round(left))} s left" if left < 90 else f" · ~{round(left / 60)} min left"


class PanelTasks(QObject):
    busyChanged = Signal()     # a task started or ended (buttons that depend on busy() update on it)

    def __init__(self, panel: QWidget) -> None:
        super().__init__(panel)
        self._panel = panel
        self._current: dict[str, _Task] = {}      # the newest task of each name (until it has finished)
        self._active: list[_Task] = []            # every started task until its `finished` (superseded included)

    # ---- starting ---------------------------------------------------------------------------------------------------
    def start(self, name: str, target: Callable[..., Any] | Any, *args: Any,
              on_result: Callable[[Any], None] | None = None, on_event: Callable[[Any], None] | None = None,
              on_failed: Callable[[str, str], None] | None = None,
              on_finished: Callable[[bool], None] | None = None, progress: QProgressBar | None = None,
              status: Callable[[str], None] | None = None, progress_format: str | None = None,
              error_dialog: bool = True, iterate: bool = False, stop: Callable[[], None] | None = None,
              **kwargs: Any) -> Worker:
        """Run `target(*args, **kwargs)` (or iterate it) as task `name`, stopping the running task of that name.

        `on_result(value)` gets a returned value, `on_event(item)` each yielded item (a `Progress` goes to the bar
        when there is one), `on_failed(message, details)` runs after the common error path (`status` and the error
        dialog, unless `error_dialog` is False), `on_finished(stopped)` when the task is over, unless a newer task of
        the same name replaced it. `progress_format` (e.g. "encode %p%") is shown on the bar while it counts."""
        self.cancel(name)
        worker = Worker(target, *args, task=name, iterate=iterate, stop=stop, **kwargs)
        task = _Task(name, worker, on_result, on_event, on_failed, on_finished, progress, status, progress_format,
                     error_dialog)
        worker.event.connect(lambda item: self._event(task, item))
        worker.result.connect(lambda value: self._result(task, value))
        worker.failed.connect(lambda message, details: self._failed(task, message, details))
        worker.finished.connect(lambda: self._finish(task))
        self._current[name] = task
        self._active.append(task)
        if progress is not None:
            progress.setRange(0, 0)        # busy until the first Progress event
        worker.start()
        self.busyChanged.emit()
        return worker

    def _is_current(self, task: _Task) -> bool:
        return self._current.get(task.name) is task and not task.worker.stop_requested

    def _event(self, task: _Task, item: Any) -> None:
        if not self._is_current(task):
            return
        bar = task.progress
        if isinstance(item, Progress) and bar is not None:
            if item.total:
                bar.setRange(0, int(item.total))
                bar.setValue(int(item.done))
                if task.progress_format is not None:
                    eta = time_left(_now() - task.started, item.done, item.total)
                    bar.setFormat(task.progress_format.replace("{eta}", eta))
        elif task.on_event is not None:
            task.on_event(item)

    def _result(self, task: _Task, value: Any) -> None:
        if self._is_current(task) and task.on_result is not None:
            task.on_result(value)

    def _failed(self, task: _Task, message: str, details: str) -> None:
        if not self._is_current(task):
            return
        task.failed = True
        if task.status is not None:
            task.status(f"failed: {message}")
        if task.error_dialog:
            from explorer.widgets.dialogs import show_error

            show_error(self._panel, message, details)
        if task.on_failed is not None:
            task.on_failed(message, details)

    def _finish(self, task: _Task) -> None:
        if task not in self._active:
            return
        self._active.remove(task)
        was_current = self._current.get(task.name) is task
        if was_current:
            del self._current[task.name]
            bar = task.progress
            if bar is not None and all(t.progress is not bar for t in self._current.values()):
                end_progress(task.worker, bar, failed=task.failed)
            if task.on_finished is not None:
                task.on_finished(task.worker.stop_requested)
        self.busyChanged.emit()

    # ---- asking -----------------------------------------------------------------------------------------------------
    def worker(self, name: str) -> Worker | None:
        """The newest worker of task `name` until it has finished (None when there is none)."""
        task = self._current.get(name)
        return None if task is None else task.worker

    def busy(self, name: str | None = None) -> bool:
        """A task (of `name`, or any) has not finished yet; a stopped one counts until it has ended."""
        return any(name is None or t.name == name for t in self._active)

    def running(self, name: str) -> bool:
        """Task `name` runs and has not been cancelled: its result will be delivered."""
        task = self._current.get(name)
        return task is not None and not task.worker.stop_requested

    # ---- stopping ---------------------------------------------------------------------------------------------------
    def cancel(self, name: str) -> bool:
        """Stop task `name` (its results are dropped; `on_finished(True)` follows). True when one was running."""
        task = self._current.get(name)
        if task is None or task.worker.stop_requested:
            return False
        task.worker.stop()
        return True

    def cancel_all(self) -> bool:
        return any([self.cancel(name) for name in list(self._current)])

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop every task and wait for each (window close)."""
        for task in list(self._active):
            task.worker.stop()
        for task in list(self._active):
            task.worker.join(timeout)      # delivers its `finished`: the task leaves the lists
        self._active.clear()
        self._current.clear()
