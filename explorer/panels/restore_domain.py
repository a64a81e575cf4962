"""The Denoise / Enhance panel's domain note: says in plain words when the chosen image is unlike the training data.

For the shown VAE, the range of reconstruction errors on held-out images of its dataset is computed once (on a
worker: `core.restoration.domain.reference_range`, a few seconds) and kept while that model lives; each chosen image's
own error is computed on the worker too (the GUI thread runs no model). Only while the tab is shown: a model replaced
every epoch by a training run shown elsewhere costs nothing until the user comes here. The note is empty when the
image is within the range, when no VAE is shown, or when the loaded dataset is not the one the VAE was made for.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QWidget

from core.data.datasets import Dataset
from core.restoration.domain import DomainRange, domain_note, reconstruction_errors, reference_range
from core.training.checkpoint import LoadedModel
from explorer.panels.tasks import PanelTasks


def _score(vae: Any, dataset: Dataset, image: np.ndarray, reference: DomainRange | None, *, progress: Any = None,
           should_stop: Any = None) -> tuple[Any, DomainRange | None, float | None]:
    """(the model, its reference range, the image's error): runs on the worker."""
    if reference is None:
        reference = reference_range(vae, dataset, progress=progress, should_stop=should_stop)
    errors = None if reference is None else reconstruction_errors(vae, torch.from_numpy(image.copy())[None])
    return vae, reference, None if errors is None else float(errors[0])


class DomainCheck(QObject):
    """`check(image, vae, dataset)` → `noteChanged(text)` once the worker has the image's error ("" = in range)."""

    noteChanged = Signal(str)

    def __init__(self, panel: QWidget) -> None:
        super().__init__(panel)
        self.tasks = PanelTasks(panel)     # "domain"
        self._panel = panel
        self._pending: tuple[Any, ...] | None = None   # a check asked for while the tab was hidden
        panel.installEventFilter(self)
        self._ranges: weakref.WeakKeyDictionary[Any, DomainRange] = weakref.WeakKeyDictionary()
        self.note = ""
        self.error: float | None = None        # the last checked image's reconstruction error
        self.reference: DomainRange | None = None

    def check(self, image: np.ndarray | None, vae: LoadedModel | None, dataset: Dataset | None) -> None:
        """Check `image` (float (C, H, W)) against `vae`'s training data (the loaded `dataset` if it is the VAE's)."""
        self._set("", None)
        self.tasks.cancel("domain")
        self._pending = None
        if not self._panel.isVisible():
            # e.g. a training run's snapshot each epoch while another tab is shown: no work until this tab is
            self._pending = (image, vae, dataset)
            return
        if image is None or vae is None or dataset is None:
            return
        meta, data = vae.meta, dataset.meta
        if (meta.name, meta.channels, meta.image_size) != (data.name, data.channels, data.image_size) or \
                image.shape != (meta.channels, meta.image_size, meta.image_size):
            return
        self.tasks.start("domain", _score, vae.model, dataset, image, self._ranges.get(vae.model),
                         on_result=self._on_result, error_dialog=False)

    def _on_result(self, result: tuple[Any, DomainRange | None, float | None]) -> None:
        model, reference, error = result
        if reference is not None:
            self._ranges[model] = reference
        self.reference = reference
        self._set(domain_note(error, reference) if reference is not None and error is not None else "", error)

    def _set(self, note: str, error: float | None) -> None:
        self.error = error
        if note != self.note:
            self.note = note
            self.noteChanged.emit(note)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and self._pending is not None:
            self.check(*self._pending)
        return False

    def busy(self) -> bool:
        return self.tasks.busy("domain")

    def shutdown(self) -> None:
        self.tasks.shutdown(30)
