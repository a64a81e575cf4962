"""Worker: iterators and functions on a QThread, events on the GUI thread, stop, failures, join."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from core.errors import UserError
from core.training.events import Progress
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


def test_a_burst_of_events_wakes_the_gui_thread_once_and_arrives_in_order(qtbot):
    produced = threading.Event()

    def burst():
        yield from range(200)
        produced.set()
        yield "last"

    w = Worker(burst)
    wakeups, seen = [], []
    original = w._deliver

    def counting_deliver():
        wakeups.append(threading.get_ident())
        original()

    w._deliver = counting_deliver   # (the queued connection is made in start(), to this attribute)
    w.event.connect(seen.append)
    w.start()
    assert produced.wait(10)        # the GUI thread was busy (here: blocked) while the worker produced
    with qtbot.waitSignal(w.finished, timeout=10_000):
        pass
    assert seen == [*range(200), "last"]
    assert len(wakeups) <= 3, f"{len(wakeups)} wake-ups for {len(seen)} events"
    assert set(wakeups) == {threading.get_ident()}


def test_a_slot_that_spins_the_event_loop_does_not_reorder_events(qtbot):
    """A slot showing a modal dialog runs a nested event loop, which delivers the following events re-entrantly."""
    from PySide6.QtCore import QCoreApplication

    w = Worker(iter(range(30)))
    seen = []

    def slot(ev):
        seen.append(ev)
        if ev == 3:
            time.sleep(0.05)      # let the worker queue the rest
            QCoreApplication.processEvents()

    w.event.connect(slot)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        w.start()
    assert seen == list(range(30))


def test_gui_thread_runs_torch_on_one_thread_and_workers_on_all(qtbot, monkeypatch):
    import torch

    import explorer.worker as worker_mod

    monkeypatch.setattr(worker_mod, "_GUI_THREAD_PINNED", False)
    monkeypatch.setattr(worker_mod, "_WORKER_THREADS", [0])
    before = torch.get_num_threads()
    torch.set_num_threads(2)    # the GUI thread with torch's default on a 2-core machine
    try:
        w = Worker(torch.get_num_threads)   # runs on the worker thread
        results = []
        w.result.connect(results.append)
        with qtbot.waitSignal(w.finished, timeout=10_000):
            w.start()
        assert torch.get_num_threads() == 1   # the GUI thread: single-image decodes need no thread team
        assert results == [2]                 # workers keep what the GUI thread had
    finally:
        torch.set_num_threads(before)


# ---- PanelTasks: one panel's background work ------------------------------------------------------------------------

def _panel_tasks(qtbot):
    from PySide6.QtWidgets import QProgressBar, QWidget

    from explorer.panels.tasks import PanelTasks

    panel = QWidget()
    qtbot.addWidget(panel)
    return PanelTasks(panel), QProgressBar(panel)


def _gated(gate: threading.Event, value):
    def job(*, progress=None, should_stop=None):
        progress(1, 4)
        while not gate.is_set() and not should_stop():
            time.sleep(0.005)
        return value
    return job


def test_panel_tasks_newest_wins_a_superseded_result_never_arrives(qtbot):
    tasks, bar = _panel_tasks(qtbot)
    results, finished = [], []
    first_gate, second_gate = threading.Event(), threading.Event()
    first = tasks.start("map", _gated(first_gate, "old"), on_result=results.append, progress=bar,
                        on_finished=lambda stopped: finished.append(("first", stopped)))
    qtbot.waitUntil(lambda: bar.maximum() == 4, timeout=10_000)        # Progress events drive the bar
    second = tasks.start("map", _gated(second_gate, "new"), on_result=results.append, progress=bar,
                         on_finished=lambda stopped: finished.append(("second", stopped)))
    assert first.stop_requested and tasks.worker("map") is second
    first_gate.set()                      # the superseded task still returns a value: it is dropped
    qtbot.waitUntil(lambda: not first.is_running(), timeout=10_000)
    qtbot.wait(50)
    assert results == [] and finished == [] and tasks.busy("map")
    second_gate.set()
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    assert results == ["new"] and finished == [("second", False)]
    assert bar.value() == bar.maximum() == 4                           # ends full
    tasks.shutdown()


def test_panel_tasks_cancel_drops_the_result_and_empties_the_bar(qtbot):
    tasks, bar = _panel_tasks(qtbot)
    results, finished, busy = [], [], []
    tasks.busyChanged.connect(lambda: busy.append(tasks.busy()))
    gate = threading.Event()
    w = tasks.start("encode", _gated(gate, "value"), on_result=results.append, progress=bar,
                    on_finished=finished.append)
    assert tasks.running("encode") and bar.maximum() == 0               # busy bar until the first Progress event
    assert tasks.cancel("encode") and not tasks.running("encode") and w.stop_requested
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    assert results == [] and finished == [True] and busy == [True, False]
    assert bar.value() == bar.minimum()                                 # ends empty
    assert not tasks.cancel("encode")                                   # nothing left to cancel


def test_panel_tasks_busy_bar_ends_full_and_shared_bar_ends_with_the_last_task(qtbot):
    tasks, bar = _panel_tasks(qtbot)
    gate = threading.Event()
    tasks.start("encode", lambda: 1, progress=bar,
                on_result=lambda _: tasks.start("project", _gated(gate, 2), progress=bar))
    qtbot.waitUntil(lambda: tasks.worker("encode") is None, timeout=10_000)
    assert tasks.busy("project") and bar.maximum() in (0, 4) and bar.value() != bar.maximum()   # still counting
    gate.set()
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    assert bar.value() == bar.maximum()


def test_panel_tasks_route_failures_to_the_status_and_the_error_dialog(qtbot):
    from PySide6.QtWidgets import QApplication, QMessageBox

    tasks, bar = _panel_tasks(qtbot)
    status, extra, finished = [], [], []

    def fails():
        raise UserError("choose a smaller batch")

    tasks.start("grid", fails, status=status.append, on_failed=lambda m, d: extra.append((m, d)), progress=bar,
                on_finished=finished.append)
    qtbot.waitUntil(lambda: finished == [False], timeout=10_000)
    assert status == ["failed: choose a smaller batch"] and extra == [("choose a smaller batch", "")]
    assert bar.value() == bar.minimum()                                 # a failed task's bar ends empty
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert [b.text() for b in boxes] == ["choose a smaller batch"] and boxes[0].detailedText() == ""
    for b in boxes:
        b.close()

    def bug():
        raise ZeroDivisionError("oops")

    tasks.start("grid", bug, status=status.append)
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert len(boxes) == 1 and boxes[0].text() == "ZeroDivisionError: oops" and "Traceback" in boxes[0].detailedText()
    boxes[0].close()


def test_panel_tasks_shutdown_stops_and_joins_everything(qtbot):
    tasks, _ = _panel_tasks(qtbot)
    gates = [threading.Event(), threading.Event()]
    a = tasks.start("a", _gated(gates[0], 1))
    b = tasks.start("b", _gated(gates[1], 2))
    tasks.cancel_all()
    tasks.shutdown()
    assert not a.is_running() and not b.is_running() and not tasks.busy()


def test_panel_tasks_show_the_time_left_once_the_rate_is_known(qtbot, monkeypatch):
    import explorer.panels.tasks as pt

    clock = [100.0]
    monkeypatch.setattr(pt, "_now", lambda: clock[0])
    tasks, bar = _panel_tasks(qtbot)
    gate = threading.Event()
    tasks.start("project", _gated(gate, "xy"), progress=bar, progress_format="UMAP %p%{eta}")
    qtbot.waitUntil(lambda: bar.maximum() == 4, timeout=10_000)
    assert bar.format() == "UMAP %p%"                  # 1 of 4 done at once: too early to estimate
    tasks.shutdown()

    clock[0] = 100.0
    tasks, bar = _panel_tasks(qtbot)
    late = threading.Event()

    def job(*, progress=None, should_stop=None):
        progress(1, 4)
        while not late.is_set() and not should_stop():
            time.sleep(0.005)
        progress(2, 4)                                  # half done after 40 s: about 40 s left
        while not gate.is_set() and not should_stop():
            time.sleep(0.005)
        return "xy"

    tasks.start("project", job, progress=bar, progress_format="UMAP %p%{eta}")
    qtbot.waitUntil(lambda: bar.maximum() == 4, timeout=10_000)
    clock[0] = 140.0
    late.set()
    qtbot.waitUntil(lambda: bar.value() == 2, timeout=10_000)
    assert bar.format() == "UMAP %p% · ~40 s left"
    assert pt.time_left(600, 1, 4) == " · ~30 min left" and pt.time_left(10, 4, 4) == ""
    gate.set()
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=10_000)
    tasks.shutdown()
