"""The main window's tabs: the tab on screen claims its panel's minimum size, up to what a 1024x700 screen has room
for; beyond that its page scrolls.

A QTabWidget is as wide as the widest of *all* its pages (its stack's minimum is their maximum), so one wide panel,
even one never shown, kept the whole window from a 1024-px screen (issue 23: 1,155 px). Here every page sits in a
frameless QScrollArea that resizes the panel to the space there is, and only the *current* page claims its panel's
minimum size, capped at `ROOM`: the models dock yields to the panel on screen, and a panel wider or taller than
`ROOM` gets scroll bars on its own tab instead of widening the window. The panels themselves fit a 1024x700 window
(tests/explorer/test_window_fits_small_screens.py), so the scroll bars are a safety net, not the layout.

`widget(i)`, `currentWidget()`, `indexOf(panel)` and `setCurrentWidget(panel)` speak of the panels, not of their
scroll areas (`page(i)` is the scroll area), so callers never see the wrapping.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QStyle, QTabWidget, QWidget

# The most a panel claims: a 1024x700 window less the models dock at its narrowest (~180 px), the menu bar, the panel
# header, the tab bar and the status bar.
ROOM = QSize(800, 520)


class Page(QScrollArea):
    """A tab's page: its panel fills it, never smaller than the panel's minimum size (then it scrolls). Not
    QScrollArea's `widgetResizable`: that gives a panel with a word-wrapped label (height-for-width) its *preferred*
    height, and a tall image grid then scrolled although its minimum fitted."""

    def __init__(self, panel: QWidget) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(panel)

    def fit(self) -> None:
        panel = self.widget()
        need = panel.minimumSizeHint().expandedTo(panel.minimumSize())
        w, h = self.width(), self.height()
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        if need.width() > w:            # a horizontal scroll bar takes room from the height, and the other way round
            h -= bar
        if need.height() > h:
            w -= bar
            if need.width() > w and need.width() <= self.width():
                h -= bar
        panel.resize(max(w, need.width()), max(h, need.height()))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.fit()


class PanelTabs(QTabWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.currentChanged.connect(lambda _i: self._claim())

    def _claim(self) -> None:
        """The current page's minimum size is its panel's, up to `ROOM`; the other pages claim none."""
        for i in range(self.count()):
            page = self.page(i)
            if page is None:
                continue
            if i == self.currentIndex():
                panel = page.widget()
                page.setMinimumSize(panel.minimumSizeHint().expandedTo(panel.minimumSize()).boundedTo(ROOM))
            else:
                page.setMinimumSize(0, 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """A panel's layout changed (its minimum size may have): its page fits it again, and claims it if current."""
        if event.type() == QEvent.Type.LayoutRequest:
            page = watched.parentWidget().parentWidget() if isinstance(watched, QWidget) else None
            if isinstance(page, Page):       # panel -> the scroll area's viewport -> the page
                page.fit()
            if watched is self.currentWidget():
                self._claim()
        return False

    def addTab(self, widget: QWidget, title: str) -> int:  # type: ignore[override]
        index = super().addTab(self._wrap(widget), title)
        self._claim()
        return index

    def insertTab(self, index: int, widget: QWidget, title: str) -> int:  # type: ignore[override]
        index = super().insertTab(index, self._wrap(widget), title)
        self._claim()
        return index

    def page(self, index: int) -> Page | None:
        """The scroll area that holds tab `index`'s panel."""
        page = super().widget(index)
        return page if isinstance(page, Page) else None

    def widget(self, index: int) -> QWidget | None:  # type: ignore[override]
        page = self.page(index)
        return page.widget() if page is not None else None

    def currentWidget(self) -> QWidget | None:  # type: ignore[override]
        return self.widget(self.currentIndex())

    def indexOf(self, widget: QWidget) -> int:  # type: ignore[override]
        return next((i for i in range(self.count()) if self.widget(i) is widget), -1)

    def setCurrentWidget(self, widget: QWidget) -> None:  # type: ignore[override]
        index = self.indexOf(widget)
        if index >= 0:
            self.setCurrentIndex(index)

    def removeTab(self, index: int) -> None:
        """As QTabWidget's: the panel is not deleted (its scroll area is; the caller owns the panel now)."""
        page = self.page(index)
        super().removeTab(index)
        if page is not None:
            panel = page.takeWidget()
            panel.removeEventFilter(self)
            panel.setParent(None)
            page.deleteLater()

    def _wrap(self, widget: QWidget) -> Page:
        widget.installEventFilter(self)
        return Page(widget)


class DockYields(QObject):
    """Installed on the main window: when the window is resized, a dock beside the tabs wider than leaves the panels
    `ROOM`'s width gives way (a 1024-px window: the models list ~210 px, the panel ~800), never below the dock's own
    minimum. The user can still drag it wider; the next resize of the window gives way again."""

    def __init__(self, window: QMainWindow, dock: QDockWidget) -> None:
        super().__init__(window)
        self.window, self.dock = window, dock

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and watched is self.window and not self.dock.isHidden():
            room = max(self.dock.minimumSizeHint().width(), self.window.width() - ROOM.width() - 10)
            if self.dock.width() > room:
                self.window.resizeDocks([self.dock], [room], Qt.Orientation.Horizontal)
        return False
