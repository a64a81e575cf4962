"""`WorkWhenShown`: panels whose reload encodes or projects a dataset do that work only while they are on screen."""

from __future__ import annotations

from typing import Any

from explorer.panels.tasks import PanelTasks


class WorkWhenShown:
    """Mix into a panel (before QWidget) that has `reload()` and a `PanelTasks` in `self.tasks`.

    While the panel is hidden, `reload()` calls `defer_while_hidden()`, which cancels its tasks, marks the panel
    stale and tells it to return; showing the panel reloads it. Why: a hidden tab that re-encoded (or ran UMAP, whose
    first import compiles for ~30 s and cannot be interrupted) on every new model would slow start-up and training
    for a view nobody looks at.
    """

    tasks: PanelTasks
    _stale = False

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)   # type: ignore[misc]
        if self._stale:
            self.reload()   # type: ignore[attr-defined]

    def defer_while_hidden(self) -> bool:
        """True when hidden (the panel is now stale and its tasks cancelled): the caller returns at once."""
        if self.isVisible():   # type: ignore[attr-defined]
            self._stale = False
            return False
        self._stale = True
        self.tasks.cancel_all()
        return True
