"""Help menu: About names the versions and device, the shortcut list is read from the menus; View reaches every tab;
Run has Stop."""

from __future__ import annotations

import torch

from explorer.main_window import MainWindow
from explorer.state import AppState
from explorer.widgets.help_menu import about_text, shortcuts_text


def test_help_about_shortcuts_view_and_stop(qtbot):
    window = MainWindow(AppState(), defer_panels=False)
    qtbot.addWidget(window)
    menus = {m.title().replace("&", ""): m for m in window.menuBar().findChildren(type(window.menuBar().addMenu("x")))}
    assert {"File", "Run", "View", "Help"} <= set(menus)
    assert [a.text().replace("&", "") for a in menus["Help"].actions()] == ["About VAE Explorer",
                                                                           "Keyboard shortcuts", "README"]
    assert f"PyTorch {torch.__version__}" in about_text() and "Device: cpu" in about_text()
    keys = shortcuts_text(window)
    assert "Run › Train / pause: Ctrl+T" in keys and "Run › Stop: Ctrl+." in keys
    view_texts = [a.text() for a in menus["View"].actions()]
    for i in range(window.tabs.count()):      # every tab has a View entry
        assert any(window.tabs.tabText(i) in t for t in view_texts), window.tabs.tabText(i)
