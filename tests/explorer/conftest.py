"""GUI test set-up: settings in a temporary folder, and a fixture that fails any test leaving a thread or timer running.

After each test every top-level window is closed (as the user would: closeEvent runs, panels shut down their
workers), then the test fails if a Worker thread, a QThreadPool thread or an active QTimer is left behind.
"""

from __future__ import annotations

import gc
import sys
import threading
import traceback
import weakref

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication


@pytest.fixture(scope="session", autouse=True)
def _private_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """QSettings never touches the user's real settings: INI files in a temporary folder."""
    folder = str(tmp_path_factory.mktemp("qsettings"))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, folder)
    QCoreApplication.setOrganizationName("vae-explorer")
    QCoreApplication.setApplicationName("vae-explorer-tests")


def _active_timers(app: QApplication) -> list[str]:
    # allWidgets() wraps each widget of a C++ snapshot; a garbage collection triggered by one of those allocations
    # could delete a Python-owned window whose children are still in the snapshot (a crash in PySide's wrapping).
    # Collect first, and not during the scan.
    gc.collect()
    gc.disable()
    try:
        return _scan_timers(app)
    finally:
        gc.enable()


def _scan_timers(app: QApplication) -> list[str]:
    found = []
    objects = [app, *app.allWidgets()]
    for obj in objects:
        try:
            timers = obj.findChildren(QTimer)
        except RuntimeError:   # deleted on the C++ side meanwhile
            continue
        for t in timers:
            try:
                if t.isActive():
                    found.append(f"{type(obj).__name__}/{t.objectName() or 'QTimer'} ({t.interval()} ms)")
            except RuntimeError:
                continue
    return sorted(set(found))


_REPORTED: weakref.WeakSet = weakref.WeakSet()


def _thread_stacks() -> str:
    """The innermost frames of every thread but this one: where a thread that would not stop is stuck."""
    main = threading.get_ident()
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident != main:
            parts.append(f"thread {ident}:\n" + "".join(traceback.format_stack(frame)[-6:]))
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def no_threads_or_timers_left(qapp: QApplication):
    yield
    from explorer.worker import running_workers

    gc.collect()      # windows that are garbage go now, not in the middle of the list below (see _active_timers)
    for w in list(qapp.topLevelWidgets()):
        if w.isVisible() or w.parent() is None:
            w.close()
    qapp.processEvents()
    # Give threads that were asked to stop a moment to end; a thread still running after that is a leak.
    for worker in running_workers():
        worker.join(10)
    QThreadPool.globalInstance().waitForDone(5000)
    qapp.processEvents()
    leaked = [w for w in running_workers() if w not in _REPORTED]
    _REPORTED.update(leaked)        # a leak fails the test that left it, once (not every test after it as well)
    leftovers = [f"worker thread {w._task!r}" for w in leaked]
    if leaked:
        leftovers.append("where the threads are:\n" + _thread_stacks())
    if QThreadPool.globalInstance().activeThreadCount():
        leftovers.append(f"{QThreadPool.globalInstance().activeThreadCount()} QThreadPool thread(s)")
    leftovers += [f"timer {t}" for t in _active_timers(qapp)]
    assert not leftovers, f"test left running: {', '.join(leftovers)}"



@pytest.fixture
def compared_runs(qtbot):
    """compare(folder, paths, row) -> (panel, table, rows, columns): the Runs tab (fresh folder settings) opened on
    `folder`, `paths` selected and compared, once the comparison's metrics table shows the row named `row`. The
    panel is shut down and the folder settings removed after the test."""
    from pathlib import Path

    from explorer.panels.runs import RunsPanel
    from explorer.settings import EXPERIMENT_FOLDERS, RUNS_TAB_FOLDERS
    from explorer.state import AppState

    opened = []

    def forget_folders() -> None:
        for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
            QSettings().remove(key)

    def compare(folder, paths, row):
        forget_folders()
        panel = RunsPanel(AppState())
        qtbot.addWidget(panel)
        opened.append(panel)
        panel.add_folder(str(folder))
        panel.show()
        # The folder may hold other tests' runs too: wait for these.
        qtbot.waitUntil(lambda: {Path(r.path) for r in panel.runs} >= {Path(p) for p in paths}, timeout=60_000)
        panel.select_paths(list(paths))
        panel.compare_selected()
        table = panel.compare_view.metrics_table

        def rows() -> list[str]:
            return [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]

        qtbot.waitUntil(lambda: row in rows(), timeout=30_000)
        columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
        return panel, table, rows(), columns

    yield compare
    for panel in opened:
        panel.shutdown()
    forget_folders()
