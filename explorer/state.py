"""The application's shared model of what is loaded: the dataset and the VAE / diffusion models panels explore.

Panels take an `AppState` in `__init__`, read from it, and listen to its signals; they write user choices back to it,
never to another panel (the napari pattern). The models held here are CPU snapshots in eval mode: the training
thread never shares its live model with the panels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from core.data.datasets import Dataset, Split
    from core.models.protocol import LatentVariableModel
    from core.training.checkpoint import LoadedModel


class AppState(QObject):
    vaeChanged = Signal()          # state.vae was replaced (new checkpoint, new snapshot from training)
    diffusionChanged = Signal()    # state.diffusion was replaced
    datasetChanged = Signal()      # state.dataset was replaced
    imageSelected = Signal(str, int)   # (split name, index): a panel picked a dataset image for the others
    statusMessage = Signal(str)    # a short message for the status bar

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.vae: LoadedModel | None = None
        self.diffusion: LoadedModel | None = None
        self.dataset: Dataset | None = None

    @property
    def vae_model(self) -> LatentVariableModel | None:
        """The VAE network itself (None when none is loaded)."""
        return None if self.vae is None else self.vae.model

    def split_to_encode(self, split: str) -> tuple[LoadedModel, Split] | str:
        """(the VAE, the dataset's `split`) when both are loaded and their images have the same shape; otherwise
        what is wrong, as a line for a panel's status."""
        vae, ds = self.vae, self.dataset
        missing = " and ".join(what for what, absent in (("a VAE", vae is None), ("a dataset", ds is None)) if absent)
        if missing:
            return f"Load {missing} to use this panel (File > Open checkpoint, or train one)."
        meta, mmeta = ds.meta, vae.meta
        if (meta.channels, meta.image_size) != (mmeta.channels, mmeta.image_size):
            return (f"The VAE was trained on {mmeta.channels}x{mmeta.image_size}px images, the dataset has "
                    f"{meta.channels}x{meta.image_size}px: load a matching dataset.")
        return vae, ds.split(split)

    def set_vae(self, loaded: LoadedModel | None) -> None:
        self.vae = loaded
        self.vaeChanged.emit()

    def set_diffusion(self, loaded: LoadedModel | None) -> None:
        self.diffusion = loaded
        self.diffusionChanged.emit()

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.dataset = dataset
        self.datasetChanged.emit()

    def set_model(self, loaded: LoadedModel) -> None:
        """Route a loaded model to the slot of its kind."""
        if loaded.config.model_kind == "diffusion":
            self.set_diffusion(loaded)
        else:
            self.set_vae(loaded)
