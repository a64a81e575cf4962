"""The window fits a 1280x800 and a 1024x700 screen at every tab (issue 23: 1,155 px was its narrowest once the
Interpolate tab had been built; the Sampler's header and the Codes tab's image row made it wider still).

The window is opened as `vae-explorer` opens it (deferred panels, the bundled dataset and models loaded on a worker),
every tab is shown in turn at each size (so the latent map computes its map, Denoise/Enhance loads the bundled
diffusion model, and each panel has its data), and at each tab: the window can be resized to the screen and is that
size, its minimum size fits the screen, and the panel on screen has its own minimum size within its page, so it needs
no scroll bar (explorer/widgets/panel_tabs.py: a page scrolls only beyond that); and no list inside the panel that
scrolls only up and down holds rows wider than itself (Interpolate's traversal rows were cut off under the scroll bar
at 1024 px)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QScrollArea, QWidget

from core.paths import bundled_model
from explorer.main_window import MainWindow
from explorer.state import AppState

pytestmark = pytest.mark.skipif(bundled_model("vae") is None, reason="needs resources/digits-vae.safetensors")

SCREENS = (QSize(1280, 800), QSize(1024, 700))


def fits(inner: QSize, outer: QSize) -> bool:
    return inner.width() <= outer.width() and inner.height() <= outer.height()


def clipped_lists(panel: QWidget) -> list[str]:
    """Lists in the panel that never scroll sideways (a traversal's sliders, ...) but hold rows wider than their
    viewport: their right ends are cut off under the vertical scroll bar."""
    found = []
    for area in panel.findChildren(QScrollArea):
        rows = area.widget()
        if (area.isVisible() and rows is not None and rows.width() > area.viewport().width()
                and area.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff):
            found.append(f"a list's rows are {rows.width()} px wide in a {area.viewport().width()}-px viewport "
                         f"that does not scroll sideways ({type(area.parentWidget()).__name__})")
    return found


def idle(win: MainWindow) -> bool:
    panel = win.tabs.currentWidget()
    tasks = getattr(panel, "tasks", None)
    return not win._workers and not (tasks is not None and tasks.busy())


def test_every_tab_fits_1280x800_and_1024x700(qtbot):
    win = MainWindow(AppState(), defer_panels=True)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    win.show()
    win.load_initial(None)
    qtbot.waitUntil(lambda: win.state.vae is not None and not win._workers and not win._deferred, timeout=120_000)
    problems = []
    for screen in SCREENS:
        for i in range(win.tabs.count()):
            win.tabs.setCurrentIndex(i)
            qtbot.waitUntil(lambda: idle(win), timeout=120_000)
            win.resize(screen)
            qtbot.wait(50)
            name, panel = win.tabs.tabText(i), win.tabs.currentWidget()
            where = f"{name} at {screen.width()}x{screen.height()}"
            if win.size() != screen:
                problems.append(f"{where}: the window is {win.width()}x{win.height()}")
            if not fits(win.minimumSizeHint(), screen):
                problems.append(f"{where}: the window's minimum size is {win.minimumSizeHint().toTuple()}")
            page = win.tabs.page(i)
            needs = panel.minimumSizeHint().expandedTo(panel.minimumSize())
            if not fits(needs, page.viewport().size()):
                problems.append(f"{where}: the panel needs {needs.toTuple()}, has {page.viewport().size().toTuple()}")
            bars = [b for b, bar in (("horizontal", page.horizontalScrollBar()), ("vertical", page.verticalScrollBar()))
                    if bar.isVisible()]
            if bars or panel.size() != page.viewport().size():
                problems.append(f"{where}: the panel is {panel.size().toTuple()} in its page with scroll bars {bars}")
            problems += [f"{where}: {clip}" for clip in clipped_lists(panel)]
            if win.header.isVisible() and win.header.minimumSizeHint().width() > win.centralWidget().width():
                problems.append(f"{where}: the header needs {win.header.minimumSizeHint().width()} px")
    assert win.state.diffusion is not None                 # Denoise/Enhance and the Sampler were shown with it
    assert problems == []


def test_a_panel_wider_than_the_room_scrolls_on_its_own_tab(qtbot):
    """The safety net: a panel that does not fit gets scroll bars on its page, keeps its minimum size, and does not
    make the tabs claim more than ROOM; the tabs speak of panels, not of their scroll areas."""
    from PySide6.QtWidgets import QLabel

    from explorer.widgets.panel_tabs import ROOM, PanelTabs

    tabs = PanelTabs()
    qtbot.addWidget(tabs)
    small, wide = QLabel("small"), QLabel("wide")
    wide.setMinimumSize(1200, 900)
    tabs.addTab(small, "small")
    tabs.addTab(wide, "wide")
    tabs.resize(600, 400)
    tabs.show()
    assert tabs.minimumSizeHint().width() < 200     # the small panel is current: the wide one claims nothing
    tabs.setCurrentWidget(wide)
    assert tabs.currentIndex() == 1 and tabs.currentWidget() is wide and tabs.indexOf(wide) == 1
    qtbot.wait(20)
    assert tabs.minimumSizeHint().width() <= ROOM.width() + 20
    page = tabs.page(1)
    assert wide.size().toTuple() == (1200, 900)
    assert page.horizontalScrollBar().isVisible() and page.verticalScrollBar().isVisible()
    tabs.resize(1400, 1000)
    qtbot.wait(20)
    assert wide.size() == page.viewport().size() and not page.horizontalScrollBar().isVisible()
    tabs.removeTab(1)
    assert tabs.count() == 1 and wide.parent() is None          # the caller owns it, as with QTabWidget
    wide.deleteLater()
