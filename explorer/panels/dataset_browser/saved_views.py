"""The Dataset tab's saved views: a list of named views (query, class, sort; core/latent/saved_views.py) above the
grid, kept in the panel settings under `dataset_browser.views` (so saved on quit, restored on launch and carried by
File > Save workspace as...). Choosing a view in the list applies it, even when it is the one shown (the query is
re-run on the data shown now); Save view... names the panel's current view; Rename... and Delete act on the view
chosen in the list (the Edit menu). A bad name or query is one line in the panel's status, and nothing saved is changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolButton,
    QWidget,
)

from core.errors import UserError
from core.latent.saved_views import (
    MAX_NAME,
    SavedView,
    add_view,
    delete_view,
    find,
    rename_view,
    views_from_json,
    views_to_json,
)
from explorer.settings import PanelSettings

KEY = "dataset_browser.views"


class SavedViewsBar(QWidget):
    def __init__(self, settings: PanelSettings, *, capture: Callable[[str], SavedView | str],
                 apply: Callable[[SavedView], bool], class_names: Callable[[], Sequence[str]],
                 say: Callable[[str, bool], None], parent: QWidget | None = None) -> None:
        """`capture(name)` is the panel's current view under that name (or a line saying why there is none yet);
        `apply(view)` puts a view in place (False, having said why, when it cannot); `say(text, is_error)` writes
        the panel's status line."""
        super().__init__(parent)
        self.settings, self._capture, self._apply, self._class_names, self._say = \
            settings, capture, apply, class_names, say
        self.views: list[SavedView] = []
        self.box = QComboBox()
        self.box.setMinimumContentsLength(16)
        self.box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.box.setToolTip("Saved views: choose one to apply it to the data shown now")
        self.box.activated.connect(self._on_activated)
        self.save_button = QPushButton("Save view...")
        self.save_button.setToolTip("Keep the query, class and sort order as a named view (kept with the workspace)")
        self.save_button.clicked.connect(self._ask_save)
        self.edit_button = QToolButton()
        self.edit_button.setText("Edit")
        self.edit_button.setToolTip("Rename or delete the view chosen in the list")
        self.edit_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.edit_button)
        menu.addAction("Rename...", self._ask_rename)
        menu.addAction("Delete...", self._ask_delete)
        self.edit_button.setMenu(menu)
        self.row = lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Views:"))
        lay.addWidget(self.box)
        lay.addWidget(self.save_button)
        lay.addWidget(self.edit_button)
        lay.addStretch(1)
        self.read()
        settings.replaced.connect(self.read)

    # ---- storage ----------------------------------------------------------------------------------------------------
    def read(self) -> None:
        """The views kept in the settings (entries that are not views are left out)."""
        self.views = views_from_json(self.settings.value(KEY, []))
        self._fill(None)

    def _store(self, views: list[SavedView], current: str | None) -> None:
        self.views = views
        self.settings.set_value(KEY, views_to_json(views))
        self._fill(current)

    def _fill(self, current: str | None) -> None:
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItem(f"saved views ({len(self.views)})" if self.views else "no saved views yet")
        for v in self.views:
            self.box.addItem(v.name)
            self.box.setItemData(self.box.count() - 1, f"{v.describe()}\nsaved on {v.origin()}",
                                 role=Qt.ItemDataRole.ToolTipRole)
        self.box.setCurrentIndex(self._position(current))
        self.box.blockSignals(False)
        self.edit_button.setEnabled(bool(self.views))

    def _position(self, name: str | None) -> int:
        view = None if name is None else find(self.views, name)
        return 0 if view is None else 1 + self.views.index(view)

    def mark(self, name: str | None) -> None:
        """Show `name` as the current view in the list (None: the view shown is none of the saved ones)."""
        self.box.setCurrentIndex(self._position(name))

    @property
    def current(self) -> SavedView | None:
        i = self.box.currentIndex()
        return self.views[i - 1] if 1 <= i <= len(self.views) else None

    # ---- what the user does (each returns whether it happened; a refusal is one line) -----------------------------
    def save(self, name: str) -> bool:
        view = self._capture(name)
        if isinstance(view, str):
            return self._refuse(view)
        try:
            views = add_view(self.views, view, self._class_names())
        except UserError as exc:
            return self._refuse(str(exc))
        self._store(views, views[-1].name)
        self._say(f"saved the view {views[-1].name!r}: {views[-1].describe()} ({view.count:,} images)", False)
        return True

    def apply(self, name: str) -> bool:
        view = find(self.views, name)
        if view is None:
            return self._refuse(f"there is no saved view named {name!r}")
        self.box.setCurrentIndex(self._position(name))
        return self._apply(view)

    def rename(self, old: str, new: str) -> bool:
        try:
            views = rename_view(self.views, old, new)
        except UserError as exc:
            return self._refuse(str(exc))
        renamed = views[self.views.index(find(self.views, old))]
        self._store(views, renamed.name)
        self._say(f"renamed the view {old!r} to {renamed.name!r}", False)
        return True

    def delete(self, name: str) -> bool:
        try:
            views = delete_view(self.views, name)
        except UserError as exc:
            return self._refuse(str(exc))
        self._store(views, None)
        self._say(f"deleted the view {name!r}; {len(views)} saved view{'s' if len(views) != 1 else ''} left", False)
        return True

    def _refuse(self, line: str) -> bool:
        self._say(line, True)
        return False

    # ---- dialogs ----------------------------------------------------------------------------------------------------
    def _on_activated(self, index: int) -> None:
        if 1 <= index <= len(self.views):
            self._apply(self.views[index - 1])

    def _ask_save(self) -> None:
        view = self._capture("")
        suggested = view.describe()[:MAX_NAME] if isinstance(view, SavedView) and view.query else ""
        name, ok = QInputDialog.getText(self, "Save view", "Name of the view (query, class and sort order):",
                                        text=suggested)
        if ok:
            self.save(name)

    def _ask_rename(self) -> None:
        view = self._chosen_or_say("rename")
        if view is not None:
            name, ok = QInputDialog.getText(self, "Rename view", f"New name for {view.name!r}:", text=view.name)
            if ok:
                self.rename(view.name, name)

    def _ask_delete(self) -> None:
        view = self._chosen_or_say("delete")
        if view is not None and QMessageBox.question(
                self, "Delete view", f"Delete the saved view {view.name!r} ({view.describe()})?") \
                == QMessageBox.StandardButton.Yes:
            self.delete(view.name)

    def _chosen_or_say(self, what: str) -> SavedView | None:
        view = self.current
        if view is None:
            self._refuse(f"choose a view in the list to {what} it")
        return view

