"""`run(argv)`: create the QApplication, show the main window, open the bundled data and model (or the path given).

Start-up path is kept light: the window is shown before torch, the dataset or any model is touched (the main window
loads them on a worker thread), and umap / diffusers are never imported here.

On an X11 desktop it first checks that the system libraries Qt's xcb platform plugin needs can be loaded: without one,
Qt aborts the process with a message that may name the wrong library (it named xcb-cursor0 when libxcb-icccm.so.4 was
missing), so the missing library and the package to install are said in one line instead.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

NO_DISPLAY = ("vae-explorer: no display found; set QT_QPA_PLATFORM=offscreen (or run under a desktop session / "
              "xvfb-run) to open the window, or use the headless commands: vae-explorer train|sample|eval")


def has_display() -> bool:
    """False on Linux with no X11/Wayland display and no Qt platform chosen (Qt would abort with a long message)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


# What Qt's xcb plugin (libqxcb.so, libQt6XcbQpa.so.6) and QtGui load from the system, with the Debian / Ubuntu package
# of each: `readelf -d` of PySide6 6.11's libraries (less glibc, libstdc++ and what PySide6 bundles), packages from
# `dpkg -S` on Debian 12 (Ubuntu 24.04 renamed libglib2.0-0 to libglib2.0-0t64; apt picks it for the old name).
# Listed before the libraries that depend on them; a missing base library makes its dependents fail to load too.
XCB_LIBRARIES: tuple[tuple[str, str], ...] = (
    ("libglib-2.0.so.0", "libglib2.0-0"),
    ("libgthread-2.0.so.0", "libglib2.0-0"),
    ("libdbus-1.so.3", "libdbus-1-3"),
    ("libfreetype.so.6", "libfreetype6"),
    ("libfontconfig.so.1", "libfontconfig1"),
    ("libGL.so.1", "libgl1"),
    ("libEGL.so.1", "libegl1"),
    ("libxcb.so.1", "libxcb1"),
    ("libX11.so.6", "libx11-6"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxcb-render.so.0", "libxcb-render0"),
    ("libxcb-shm.so.0", "libxcb-shm0"),
    ("libxcb-sync.so.1", "libxcb-sync1"),
    ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    ("libxcb-shape.so.0", "libxcb-shape0"),
    ("libxcb-randr.so.0", "libxcb-randr0"),
    ("libxcb-util.so.1", "libxcb-util1"),
    ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"),
)


def xcb_platform_expected(environ: Mapping[str, str] | None = None) -> bool:
    """Whether Qt will start its xcb (X11) platform plugin: QT_QPA_PLATFORM names xcb first, or is unset on an X11
    display that is not a Wayland session (there Qt tries its wayland plugin first)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    wayland = bool(env.get("WAYLAND_DISPLAY")) or env.get("XDG_SESSION_TYPE") == "wayland"
    return bool(env.get("DISPLAY")) and not wayland


def missing_xcb_libraries(load: Callable[[str], object] = ctypes.CDLL) -> list[tuple[str, str]]:
    """The (library, Debian/Ubuntu package) pairs of XCB_LIBRARIES that `load` cannot load (it raises OSError)."""
    missing = []
    for library, package in XCB_LIBRARIES:
        try:
            load(library)
        except OSError:
            missing.append((library, package))
    return missing


def missing_libraries_message(missing: list[tuple[str, str]]) -> str:
    """One line: which libraries are missing and the command that installs them."""
    libraries = ", ".join(library for library, _ in missing)
    packages = " ".join(dict.fromkeys(package for _, package in missing))
    return (f"vae-explorer: Qt's X11 (xcb) platform plugin cannot load {libraries}; install with "
            f"`sudo apt-get install {packages}` (Debian/Ubuntu), or set QT_QPA_PLATFORM=offscreen to run without "
            "a window")


def close_on_signals(window: Any) -> tuple[list[int], Callable[[], None]]:
    """SIGTERM (docker stop, systemd, a logout) and Ctrl-C in the launching terminal close the window as "stop and
    save" would, without asking: a run in progress stops after its step and keeps an interrupt checkpoint.

    Python runs its signal handlers only when it gets control, which a Qt event loop waiting in C++ does not give it:
    the C-level handler writes to a socket (signal.set_wakeup_fd) whose notifier wakes the loop, and Python then runs
    the handler. Returns (the signals received, a function that puts the previous handlers back)."""
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier, QTimer

    received: list[int] = []
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        window._closing = True          # no "training is running, quit?" question: the answer is "stop and save"
        QTimer.singleShot(0, window.close)

    def drain() -> None:
        try:
            reader.recv(64)
        except OSError:
            pass

    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno())
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:                  # not the main thread: leave signals alone
        reader.close()
        writer.close()
        return received, lambda: None
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)
    notifier.activated.connect(drain)

    def restore() -> None:
        notifier.setEnabled(False)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        reader.close()
        writer.close()

    return received, restore


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    if xcb_platform_expected():
        missing = missing_xcb_libraries()
        if missing:
            print(missing_libraries_message(missing), file=sys.stderr)
            return 2
    paths = [a for a in argv if not a.startswith("-")]

    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("vae-explorer")
    QCoreApplication.setApplicationName("vae-explorer")
    if QApplication.instance() is None:
        # Fractional scale factors (125%, 150%) drawn as such, not rounded to 1x/2x: the plots stay sharp.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "vae-explorer"])

    from explorer.main_window import MainWindow
    from explorer.state import AppState
    from explorer.workspace import default_workspace_path

    state = AppState()
    window = MainWindow(state, defer_panels=True, workspace=default_workspace_path())
    window.show()
    window.load_initial(paths[0] if paths else None)
    received, restore_signals = close_on_signals(window)
    try:
        code = int(app.exec())
        return 128 + received[0] if received else code
    finally:
        restore_signals()
        # However the loop ended (last window closed, app.quit(), an exception), stop and join the workers: a QThread
        # destroyed while running aborts the process.
        if window.isVisible() or any(w.is_running() for w in window._workers):
            window._closing = True   # no "training is running" question at this point: stop and save
            window.close()
