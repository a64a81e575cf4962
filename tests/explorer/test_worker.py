"""Worker: iterators and functions on a QThread, events on the GUI thread, stop, failures, join."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from core.errors import UserError
from core.events import Progress
from explorer.worker import Worker, describe_exception, running_workers


def test_iterator_events_arrive_in_order_on_the_gui_thread(qtbot):
    seen, threads = [], []

    def gen():
        threads.append(threading.get_ident())
        yield from range(50)

    w = Worker(gen)
    w.event.connect(lambda ev: (seen.append(ev), threads.append(threading.get_ident())))
    with qtbot.waitSignal(w.finished, timeout=10_000):
        w.start()
    assert seen == list(range(50))
    worker_thread, *gui = threads
    assert worker_thread != threading.get_ident()
    assert set(gui) == {threading.get_ident()}
    assert not w.is_running()


def test_function_gets_should_stop_and_progress_and_returns_a_result(qtbot):
    started = threading.Event()

    def long_task(n, *, progress=None, should_stop=None):
        for i in range(n):
            progress(i + 1, n)
            started.set()
            if should_stop():
                return i
            time.sleep(0.01)
        return n

    w = Worker(long_task, 10_000, task="count")
    events, results = [], []
    w.event.connect(events.append)
    w.result.connect(results.append)
    w.start()
    assert started.wait(10)
    w.stop()
    assert w.join(10)
    assert results and results[0] < 10_000
    assert events and isinstance(events[0], Progress) and events[0].task == "count"
    assert running_workers() == []


def test_stop_forwards_to_the_owner_which_finishes_its_iterator(qtbot):
    class Owner:
        def __init__(self):
            self.flag = threading.Event()

        def stop(self):
            self.flag.set()

        def run(self):
            i = 0
            while not self.flag.is_set():
                yield i
                i += 1
                time.sleep(0.002)
            yield "final"   # a cooperative owner still delivers its last events after stop

    owner = Owner()
    w = Worker(owner.run, stop=owner.stop)
    seen = []
    w.event.connect(seen.append)
    w.start()
    qtbot.waitUntil(lambda: len(seen) > 3, timeout=10_000)
    w.stop()
    assert w.join(10)
    assert seen[-1] == "final"


def test_exception_becomes_failed_with_traceback_and_finished_still_fires(qtbot):
    def boom():
        yield 1
        raise RuntimeError("kaput")

    w = Worker(boom)
    failures = []
    w.failed.connect(lambda m, d: failures.append((m, d)))
    with qtbot.waitSignal(w.finished, timeout=10_000):
        w.start()
    (message, details), = failures
    assert message == "RuntimeError: kaput"
    assert "Traceback" in details and "boom" in details


def test_user_error_is_message_only():
    assert describe_exception(UserError("pick a folder")) == ("pick a folder", "")


def test_worker_runs_once(qtbot):
    w = Worker(iter([1]))
    with qtbot.waitSignal(w.finished, timeout=10_000):
        w.start()
    with pytest.raises(RuntimeError):
        w.start()
    assert isinstance(QThread.currentThread(), QThread)
