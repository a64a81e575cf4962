"""The window's status bar: compute device, the models and dataset loaded, and the process's memory.

It listens to AppState and shows what is loaded; the memory read-out ticks every 2 s while the window is shown.
"""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QLabel, QStatusBar, QWidget

from explorer.memory import ImportFreezer, release_free_memory
from explorer.state import AppState
from explorer.widgets.elided_label import ElidedLabel

MEMORY_EVERY_MS = 2000
TRIM_EVERY_TICKS = 30          # once a minute
def process_memory_mb() -> float:
    """Resident memory of this process in MiB (/proc on Linux; peak RSS from getrusage elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class StatusBar(QStatusBar):
    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        # Parented at once: the bar (C++) owns and deletes them with the window.
        self.device_label = QLabel(f"CPU, {os.cpu_count() or 1} cores", self)   # until start-up has asked torch
        self.model_label = ElidedLabel("model: loading...", self)
        self.dataset_label = ElidedLabel("dataset: loading...", self)
        self.memory_label = QLabel("", self)
        for w in (self.device_label, self.model_label, self.dataset_label, self.memory_label):
            w.setContentsMargins(8, 0, 8, 0)
            w.setFrameShape(QFrame.Shape.StyledPanel)
            self.addPermanentWidget(w)
        self.import_freezer = ImportFreezer()     # new modules out of the collector's way (explorer/memory.py)
        self.memory_timer = QTimer(self)
        self.memory_timer.setInterval(MEMORY_EVERY_MS)
        self.memory_timer.timeout.connect(self.update_memory)
        self.stopped = False            # after stop() (the window is closing), messages are dropped
        self.update_memory()
        state.statusMessage.connect(self.show_message)
        state.vaeChanged.connect(self.update_models)
        state.diffusionChanged.connect(self.update_models)
        state.modelsChanged.connect(self.update_models)     # a shown run's status or epoch changed
        state.loadingChanged.connect(self.update_models)    # a bundled model loading for a panel
        state.datasetChanged.connect(self.update_dataset)

    def show_message(self, text: str) -> None:
        if not self.stopped:            # its timeout timer would outlive the closing window
            self.showMessage(text, 6000)

    def set_device(self, text: str) -> None:
        self.device_label.setText(text)

    def update_memory(self) -> None:
        self._ticks = getattr(self, "_ticks", 0) + 1
        if self._ticks % TRIM_EVERY_TICKS == 0:    # give freed heap pages back (see explorer/memory.py)
            release_free_memory()
        self.import_freezer.check()
        self.memory_label.setText(f"{process_memory_mb():.0f} MiB")

    def update_models(self) -> None:
        """The shown models, each with what it is doing now (training, paused, completed, stopped, following...)."""
        parts = []
        for label, kind in (("VAE", "vae"), ("diffusion", "diffusion")):
            entry = self.state.shown.get(kind)
            if entry is not None:
                parts.append(f"{label}: {entry.describe()}")
            elif kind in self.state.loading:
                parts.append(f"{label}: {self.state.loading[kind]}")
        self.model_label.setText(" | ".join(parts) if parts else "no model (open a checkpoint or train one)")

    def update_dataset(self) -> None:
        ds = self.state.dataset
        self.dataset_label.setText(f"dataset: {ds.meta.name} ({len(ds.train)} train)" if ds is not None else
                                   "no dataset")

    def start(self) -> None:
        self.stopped = False
        self.memory_timer.start()

    def stop(self) -> None:
        """Stop the memory timer and the current message's timeout timer; drop later messages."""
        self.stopped = True
        self.memory_timer.stop()
        self.clearMessage()
