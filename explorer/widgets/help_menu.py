"""The Help menu: About (versions and the device the app computes on), the keyboard shortcuts (read from the
window's own menus, so the list cannot go stale) and the README (opened, or its path shown when nothing opens it)."""

from __future__ import annotations

import platform
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

README = Path(__file__).resolve().parents[2] / "README.md"


def about_text() -> str:
    import numpy
    import pyqtgraph
    import PySide6
    import torch

    from core.device import resolve_device

    device = resolve_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    return (f"VAE Explorer\n\nPython {platform.python_version()} · PyTorch {torch.__version__} · PySide6 "
            f"{PySide6.__version__} · pyqtgraph {pyqtgraph.__version__} · NumPy {numpy.__version__}\n"
            f"Device: {device} ({name}), {torch.get_num_threads()} CPU threads")


def shortcuts_text(window: QMainWindow) -> str:
    """Every menu action with a shortcut, as 'Menu › Action: keys' lines."""
    lines = []
    for menu in window.menuBar().findChildren(QMenu):
        for action in menu.actions():
            if not action.shortcut().isEmpty():
                lines.append(f"{menu.title().replace('&', '')} › {action.text().replace('&', '')}: "
                             f"{action.shortcut().toString()}")
    return "\n".join(dict.fromkeys(lines))


def open_readme(window: QMainWindow) -> bool:
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(README))):
        return True
    QMessageBox.information(window, "README", f"The README is at\n{README}")
    return False


def add_help_menu(window: QMainWindow) -> QMenu:
    menu = window.menuBar().addMenu("&Help")
    menu.addAction("&About VAE Explorer", lambda: QMessageBox.about(window, "About VAE Explorer", about_text()))
    menu.addAction("&Keyboard shortcuts",
                   lambda: QMessageBox.information(window, "Keyboard shortcuts", shortcuts_text(window)))
    menu.addAction("&README", lambda: open_readme(window))
    return menu
