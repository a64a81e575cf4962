"""Run a core iterator (or a long function) on a QThread and hand its events to the GUI thread as signals.

Why a QObject on a plain QThread rather than superqt's `thread_worker`: we need a `join(timeout)` that really waits for
the thread (window close must save a checkpoint and join), a `stop()` that forwards to the iterator's owner
(`Trainer.stop`, which lets the trainer yield its final CheckpointSaved/RunEnded events), and a registry the test
fixture can check for threads left running. superqt's GeneratorWorker runs on the global QThreadPool, where none of
the three is direct.

Threading shape: an internal `_Runner` lives on the worker thread and emits into the `Worker`, which stays on the GUI
thread; Qt queues those emissions, so every public signal of `Worker` fires on the GUI thread and any slot, lambda
or plain function connected to it runs there. Only the yielded objects cross threads (events hold copies).

Yielded items are coalesced: the runner appends them to a queue and posts one wake-up for the GUI thread only when
none is pending, and the GUI thread then emits `event` for everything queued. A trainer's end-of-epoch burst
(summary, preview, snapshot, checkpoint, log lines) so costs the GUI thread one wake-up instead of five. On a 2-core
machine every wake-up takes a core from training for a moment, so this matters (see bench_gui_responsiveness.py).
"""

from __future__ import annotations

import inspect
import sys
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QProgressBar

from core.errors import UserError
from core.training.events import Progress

_LIVE: weakref.WeakSet[Worker] = weakref.WeakSet()


_GUI_THREAD_PINNED = False
_WORKER_THREADS = [0]    # torch threads for a worker thread (0 until the GUI thread is pinned: torch's default)


def keep_gui_thread_on_one_torch_thread() -> None:
    """Make torch run single-threaded on the calling (GUI) thread, once torch is imported; idempotent.

    Why (measured on 2 cores): once a thread has run one multi-threaded torch op, its OpenMP team stays alive, and
    libgomp, counting more threads than cores, then runs every other team "throttled" (idle threads sleep after
    1,000 spins instead of ~300,000). A digits training in a worker thread ran at about half speed after one
    multi-threaded op on the main thread (1,015 vs 1,982 images/s, in a plain script without Qt). The GUI thread's
    own forward passes are single images, which gain nothing from more threads.
    """
    global _GUI_THREAD_PINNED
    if _GUI_THREAD_PINNED or "torch" not in sys.modules:
        return
    import torch

    cores = torch.get_num_threads()   # also runs torch's per-thread set-up now, so it cannot later undo the pin
    torch.set_num_threads(1)          # this thread, and torch's default for new threads ...
    _GUI_THREAD_PINNED = True
    _WORKER_THREADS[0] = _WORKER_THREADS[0] or cores   # ... which each Worker therefore sets for itself


def _set_worker_torch_threads() -> None:
    if _WORKER_THREADS[0] and "torch" in sys.modules:
        import torch

        torch.set_num_threads(_WORKER_THREADS[0])


def running_workers() -> list[Worker]:
    """Workers whose thread is still running (the test fixture fails a test that leaves any)."""
    return [w for w in list(_LIVE) if w.is_running()]


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(message, details) for a dialog: a UserError is its message alone; anything else keeps its traceback."""
    if isinstance(exc, UserError):
        return str(exc), ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}", details


class _Runner(QObject):
    ready = Signal()          # items are waiting in `queue` (posted once until the GUI thread drains them)
    failed = Signal(str, str)
    result = Signal(object)
    done = Signal()

    def __init__(self, owner: Worker) -> None:
        super().__init__()
        self._owner = owner
        self.queue: deque[Any] = deque()
        self.lock = threading.Lock()
        self.posted = False

    def post(self, item: Any) -> None:
        """Queue an item for the GUI thread; wake it only if it has not been woken for earlier items yet."""
        with self.lock:
            self.queue.append(item)
            wake, self.posted = not self.posted, True
        if wake:
            self.ready.emit()

    def take(self) -> tuple[bool, Any]:
        """(True, next item) or (False, None) when the queue is empty (then the next post wakes the GUI again)."""
        with self.lock:
            if self.queue:
                return True, self.queue.popleft()
            self.posted = False
            return False, None

    @Slot()
    def run(self) -> None:
        w = self._owner
        try:
            _set_worker_torch_threads()
            target: Any = w._target
            if callable(target):
                target = target(*w._args, **w._kwargs)
            # Iterators (generators, Trainer.run()) are streams of events; any other value, a numpy array or a
            # list included, is one result unless the caller asked for iteration.
            if isinstance(target, Iterator) or (w._iterate and isinstance(target, Iterable)
                                                and not isinstance(target, (str, bytes, dict))):
                for item in target:
                    self.post(item)
                    # An iterator whose owner knows how to stop (Trainer.stop, should_stop) finishes by itself and
                    # yields its last events (checkpoint saved, run ended); any other one is simply abandoned.
                    if w._stop_requested and not w._cooperative:
                        break
            else:
                self.result.emit(target)
        except BaseException as exc:  # noqa: BLE001 - the thread's boundary: every failure reaches the GUI as `failed`
            self.failed.emit(*describe_exception(exc))
        finally:
            # Hand the runner back to the GUI thread (only its own thread may push it) so it is not left living on a
            # finished thread when Python frees it.
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            self.done.emit()


class Worker(QObject):
    """`Worker(target, *args, stop=None, **kwargs)`, then `start()`.

    `target` is an iterable (iterated; each item emitted as `event`) or a callable called on the worker thread with
    `*args, **kwargs`. When the callable has `should_stop` / `progress` parameters that were not passed, the worker
    supplies them (`progress(done, total)` becomes a `core.training.events.Progress` event). A callable returning a
    generator
    (any iterator) is iterated; any other return value is emitted as `result`
    (`iterate=True` iterates it too). `stop` is called by `stop()` (e.g. `trainer.stop`).

    Signals (all on the GUI thread): `event(object)`, `result(object)`, `failed(message, details)` (then `finished`),
    `finished()` once the work is over, whatever the outcome.
    """

    event = Signal(object)
    result = Signal(object)
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, target: Callable[..., Any] | Iterable[Any], *args: Any, stop: Callable[[], None] | None = None,
                 task: str = "", iterate: bool = False, parent: QObject | None = None, **kwargs: Any) -> None:
        super().__init__(parent)
        self._target = target
        self._args = args
        self._kwargs = dict(kwargs)
        self._stop_cb = stop
        self._task = task
        self._iterate = iterate
        self._stop_requested = False
        self._cooperative = stop is not None
        if callable(target):
            try:
                params = inspect.signature(target).parameters
            except (TypeError, ValueError):
                params = {}
            if "should_stop" in params and "should_stop" not in self._kwargs:
                self._kwargs["should_stop"] = self.should_stop
                self._cooperative = True
            if "progress" in params and "progress" not in self._kwargs:
                self._kwargs["progress"] = self._progress
        self._thread: QThread | None = None
        self._runner: _Runner | None = None
        self._finished = False
        _LIVE.add(self)

    # ---- called from the worker thread ----------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self._stop_requested

    def _progress(self, done: int, total: int) -> None:
        if self._runner is not None:
            self._runner.post(Progress(self._task, int(done), int(total)))

    # ---- GUI thread -------------------------------------------------------------------------------------------------
    def start(self) -> Worker:
        if self._thread is not None:
            raise RuntimeError("a Worker runs once; make a new one")
        keep_gui_thread_on_one_torch_thread()
        self._thread = QThread()
        self._thread.setObjectName(f"Worker-{self._task or 'task'}")
        self._runner = _Runner(self)
        self._runner.moveToThread(self._thread)
        # Connections to an object of the GUI thread: queued, so they fire on the GUI thread, in the order emitted.
        self._runner.ready.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._runner.result.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self._runner.failed.connect(self.failed)
        # Direct: quit must not wait for the GUI event loop, which may be blocked in join().
        self._runner.done.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._on_thread_finished)
        self._thread.started.connect(self._runner.run)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the work to end (returns at once): sets should_stop and calls the owner's stop."""
        self._stop_requested = True
        if self._stop_cb is not None:
            try:
                self._stop_cb()
            except Exception:  # noqa: BLE001 - a failing stop callback is logged; stopping the thread goes on
                traceback.print_exc()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (seconds; None = forever). True when it has ended. Delivers pending signals."""
        if self._thread is None:
            return True
        if timeout is None:
            ok = self._thread.wait()   # QThread.wait(-1) overflows its unsigned argument in some PySide6 versions
        else:
            ok = self._thread.wait(max(0, int(timeout * 1000)))
        if ok:
            # Deliver the events the runner queued before it ended (e.g. CheckpointSaved, RunEnded) right now, so a
            # caller that joins sees the same final state as one that waited for `finished`.
            QCoreApplication.sendPostedEvents(self)
            QCoreApplication.sendPostedEvents(self._thread)
            self._on_thread_finished()
        return ok

    @Slot(object)
    def _on_result(self, value: Any) -> None:
        keep_gui_thread_on_one_torch_thread()
        self.result.emit(value)

    @Slot()
    def _deliver(self) -> None:
        # One item at a time from the shared queue: a slot that spins a nested event loop (a modal dialog, join())
        # re-enters here and carries on with the next item, so items are delivered in order exactly once.
        keep_gui_thread_on_one_torch_thread()   # before any model that arrives is run here
        runner = self._runner
        while runner is not None:
            ok, item = runner.take()
            if not ok:
                return
            self.event.emit(item)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._finished or self._thread is None or self._thread.isRunning():
            return
        self._finished = True
        self.finished.emit()


def end_progress(worker: Worker | None, bar: QProgressBar, *, failed: bool = False) -> bool:
    """When `worker` has finished: the bar ends full, or empty when the work was stopped or failed (a busy bar
    becomes a plain one). Returns whether it was stopped."""
    stopped = worker is not None and worker.stop_requested
    if bar.maximum() == 0:
        bar.setRange(0, 1)
    bar.setValue(bar.minimum() if stopped or failed else bar.maximum())
    return stopped
