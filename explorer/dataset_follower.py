"""Keeps the loaded dataset in step with the models.

The latent map, the interpolation and the Denoise / Enhance panels show dataset images through the VAE, so they need
the data it was trained on. When a model arrives (File > Open checkpoint, a run's snapshot) that was trained on other
data than the loaded dataset (another dataset, a class subset, another image size), its own data config is loaded on
a worker and replaces the dataset. A data config that fails to load (a folder that is not on this machine, no network
for a download) is reported once, not again for every snapshot of the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from explorer.state import AppState
from explorer.worker import Worker


def _signature(meta: Any) -> tuple:
    return meta.name, tuple(meta.class_names), int(meta.channels), int(meta.image_size)


def _load(data_config: Any) -> Any:
    from core.data.datasets import load_dataset  # on the worker thread
    from core.errors import UserError

    try:
        return load_dataset(data_config)
    except UserError as e:
        raise UserError(f"The model's training data could not be loaded, so the latent map, interpolation and "
                        f"restoration panels keep the dataset they have: {e}") from None


class DatasetFollower(QObject):
    def __init__(self, state: AppState, run_worker: Callable[[Worker], Worker], parent: QObject | None = None) -> None:
        """`run_worker` starts a worker the window owns (its failures reach the error dialog)."""
        super().__init__(parent)
        self.state = state
        self._run_worker = run_worker
        self._loading: str | None = None     # the data config being loaded (its repr)
        self._failed: set[str] = set()       # data configs that failed to load: not tried again
        state.vaeChanged.connect(self._on_vae)
        state.diffusionChanged.connect(self._on_diffusion)

    def _on_vae(self) -> None:
        self.follow(self.state.vae)

    def _on_diffusion(self) -> None:
        self.follow(self.state.diffusion)

    def follow(self, loaded: Any) -> Worker | None:
        """Load `loaded`'s training data unless the loaded dataset already is that data; the worker, or None."""
        if loaded is None:
            return None
        ds = self.state.dataset
        if ds is not None and _signature(ds.meta) == _signature(loaded.meta):
            return None
        cfg = loaded.config.data
        key = repr(cfg)
        if key == self._loading or key in self._failed:
            return None
        self._loading = key
        self.state.statusMessage.emit(f"loading {cfg.name}, the data the model was trained on…")
        worker = self._run_worker(Worker(_load, cfg, task="dataset"))
        worker.result.connect(self._on_loaded)
        worker.failed.connect(lambda _msg, _details, key=key: self._failed.add(key))
        worker.finished.connect(self._on_finished)
        return worker

    def _on_loaded(self, dataset: Any) -> None:
        # Another model may have arrived meanwhile: the data is only wanted if a loaded model was trained on it.
        wanted = {_signature(m.meta) for m in (self.state.vae, self.state.diffusion) if m is not None}
        if _signature(dataset.meta) in wanted:
            self.state.set_dataset(dataset)

    def _on_finished(self) -> None:
        self._loading = None
