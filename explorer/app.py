"""`run(argv)`: create the QApplication, show the main window, open the bundled data and model (or the path given).

Start-up path is kept light: the window is shown before torch, the dataset or any model is touched (the main window
loads them on a worker thread), and umap / diffusers are never imported here.
"""

from __future__ import annotations

import os
import sys

NO_DISPLAY = ("vae-explorer: no display found; set QT_QPA_PLATFORM=offscreen (or run under a desktop session / "
              "xvfb-run) to open the window, or use the headless commands: vae-explorer train|sample|eval")


def has_display() -> bool:
    """False on Linux with no X11/Wayland display and no Qt platform chosen (Qt would abort with a long message)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
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

    state = AppState()
    window = MainWindow(state, defer_panels=True)
    window.show()
    window.load_initial(paths[0] if paths else None)
    try:
        return int(app.exec())
    finally:
        # However the loop ended (last window closed, app.quit(), an exception), stop and join the workers: a QThread
        # destroyed while running aborts the process.
        if window.isVisible() or any(w.is_running() for w in window._workers):
            window._closing = True   # no "training is running" question at this point: stop and save
            window.close()
