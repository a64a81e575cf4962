"""The dataset of an experiment or a search, chosen from a list: the known datasets, the image folders chosen before,
and "folder…" (a folder of class subfolders, picked in a dialog). Nothing to mistype."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QFileDialog, QWidget
from superqt.utils import signals_blocked

FOLDER_ITEM = "folder…"


class DatasetChoice(QComboBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from core.data.datasets import LOADERS

        self.addItems(list(LOADERS))
        self.addItem(FOLDER_ITEM)
        self.setToolTip("A built-in dataset (downloaded once when it is not bundled), or folder…: a folder with one "
                        "subfolder of images per class")
        self._last = self.currentIndex()
        self.activated.connect(self._on_activated)

    def dataset(self) -> str:
        """The dataset as the CLI names it: "digits", "mnist", ... or "folder:PATH"."""
        return self.currentText()

    def set_dataset(self, name: str) -> None:
        """Choose a known dataset or "folder:PATH" (added to the list when new)."""
        if name.lower().startswith("folder:"):
            self.add_folder(name[len("folder:"):])
            return
        at = self.findText(name)
        if at >= 0:
            self.setCurrentIndex(at)
            self._last = at

    def add_folder(self, path: str) -> None:
        text = f"folder:{Path(path).expanduser()}"
        at = self.findText(text)
        if at < 0:
            at = self.count() - 1           # before "folder…"
            self.insertItem(at, text)
        self.setCurrentIndex(at)
        self._last = at

    def _on_activated(self, index: int) -> None:
        if self.itemText(index) != FOLDER_ITEM:
            self._last = index
            return
        folder = QFileDialog.getExistingDirectory(self, "A folder with one subfolder of images per class")
        if folder:
            self.add_folder(folder)
        else:
            with signals_blocked(self):
                self.setCurrentIndex(self._last)
