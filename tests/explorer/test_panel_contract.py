"""A panel is a class that declares what it is (explorer/panel.py) and one line in explorer/registry.py: a newcomer's
trivial panel added that way gets its tab, its own view of the models, the header's pins, export and shutdown."""

from __future__ import annotations

import textwrap

import pytest
from PIL import Image

from explorer import registry
from explorer.main_window import MainWindow
from explorer.panel import Panel
from explorer.panel_view import PanelView
from explorer.state import AppState

HELLO = '''
from PySide6.QtWidgets import QLabel

from explorer.panel import Panel


class HelloPanel(Panel, QLabel):
    title = "Hello"
    uses = ("vae",)

    def __init__(self, view, parent=None):
        super().__init__("no VAE yet", parent)
        self.view = view
        self.stopped = False
        view.vaeChanged.connect(lambda: self.setText(f"showing {view.vae.meta.name}" if view.vae else "no VAE"))

    def shutdown(self):
        self.stopped = True
'''


@pytest.fixture
def hello_registered(tmp_path, monkeypatch):
    package = tmp_path / "newcomer_panels"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "hello.py").write_text(textwrap.dedent(HELLO))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = registry.register("Hello", "newcomer_panels.hello", "HelloPanel")
    yield entry
    registry.PANELS.remove(entry)


def test_a_panel_added_in_one_place_gets_a_tab_a_view_pins_export_and_shutdown(qtbot, hello_registered, tmp_path,
                                                                               bundled_vae):
    window = MainWindow(AppState(), defer_panels=False)
    qtbot.addWidget(window)
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles[-1] == "Hello" and window.panel_errors == {}
    panel = window.panels["hello"]
    assert isinstance(panel, Panel) and isinstance(panel.view, PanelView) and window.views["hello"] is panel.view
    # it shows the app's VAE through its view, and the header above it offers a VAE pin (its declared `uses`)
    window.state.set_vae(bundled_vae)
    assert panel.text() == f"showing {bundled_vae.meta.name}"
    window.tabs.setCurrentWidget(panel)
    assert window.header.view is panel.view and window.header.uses == ("vae",)
    assert not window.header.combos["vae"].isHidden() and window.header.combos["diffusion"].isHidden()
    # File > Export current view: the default export_png writes the panel as drawn
    out = tmp_path / "hello.png"
    window.export_png(str(out))
    assert Image.open(out).size[0] > 0
    window.close()
    assert panel.stopped
