"""File > Open recent: the last checkpoints and run folders opened or saved, kept in QSettings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

MAX_RECENT = 8
KEY = "files/recent"


class RecentFiles:
    def __init__(self, settings: QSettings, menu: QMenu, open_path: Callable[[str], None]) -> None:
        self.settings = settings
        self.menu = menu
        self._open_path = open_path
        self._rebuild()

    def paths(self) -> list[str]:
        """Newest first."""
        value = self.settings.value(KEY, [])
        if isinstance(value, str):      # QSettings returns a one-item list as a plain string
            value = [value]
        return [str(v) for v in (value or [])]

    def add(self, path: str) -> None:
        path = str(Path(path).resolve())
        items = [path] + [p for p in self.paths() if p != path]
        self.settings.setValue(KEY, items[:MAX_RECENT])
        self._rebuild()

    def _rebuild(self) -> None:
        self.menu.clear()
        items = self.paths()
        for p in items:
            act = self.menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self._open_path(p))
        self.menu.setEnabled(bool(items))
