"""What one panel looks at: the models shown app-wide, or a model pinned for this panel alone.

A `PanelView` stands in for `AppState` in a panel: it offers the same attributes and signals (`vae`, `diffusion`,
`dataset`, `vae_model`, `split_to_encode`, `vaeChanged` ...), so panels do not know whether they follow the models
list's selection or a pin. Pinning a model (`pin(kind, entry)`) makes this panel show it whatever is selected in the
list, so two panels can show two models side by side (a beta=0.3 and a beta=1 latent map, or the VAE in the sampler
and another model in Denoise / Enhance). Everything else (the models list, image hand-offs, status messages) is the
app's state, reached through this object.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from explorer.state import AppState, ModelEntry, shape_problem


class PanelView(QObject):
    vaeChanged = Signal()
    diffusionChanged = Signal()
    datasetChanged = Signal()
    pinChanged = Signal()

    def __init__(self, state: AppState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pinned: dict[str, ModelEntry | None] = {"vae": None, "diffusion": None}
        self._pinned_loaded: dict[str, Any] = {"vae": None, "diffusion": None}
        state.vaeChanged.connect(lambda: self._app_changed("vae"))
        state.diffusionChanged.connect(lambda: self._app_changed("diffusion"))
        state.datasetChanged.connect(self.datasetChanged)
        state.modelsChanged.connect(self._models_changed)

    # ---- what panels read -----------------------------------------------------------------------------------------
    @property
    def vae(self) -> Any:
        entry = self.pinned["vae"]
        return entry.loaded if entry is not None else self.state.vae

    @property
    def diffusion(self) -> Any:
        entry = self.pinned["diffusion"]
        return entry.loaded if entry is not None else self.state.diffusion

    @property
    def dataset(self) -> Any:
        return self.state.dataset

    @property
    def vae_model(self) -> Any:
        vae = self.vae
        return None if vae is None else vae.model

    def split_to_encode(self, split: str) -> Any:
        problem = shape_problem(self.vae, self.dataset)
        return problem or (self.vae, self.dataset.split(split))

    def shown_entry(self, kind: str) -> ModelEntry | None:
        """The entry this panel shows for `kind`: its pin, else the app's selection."""
        return self.pinned[kind] or self.state.shown.get(kind)

    def __getattr__(self, name: str) -> Any:
        # Everything a panel may use of the app's state besides the models it shows: imageSelected,
        # statusMessage, modelsChanged, models, snapshot_update ...
        return getattr(self.__dict__["state"] if "state" in self.__dict__ else None, name)

    # ---- pins -----------------------------------------------------------------------------------------------------
    def pin(self, kind: str, entry: ModelEntry | None) -> None:
        """Show `entry` in this panel whatever the app shows (None: follow the app's selection again)."""
        if self.pinned[kind] is entry:
            return
        before = self.vae if kind == "vae" else self.diffusion
        self.pinned[kind] = entry
        self._pinned_loaded[kind] = entry.loaded if entry is not None else None
        self.pinChanged.emit()
        if (self.vae if kind == "vae" else self.diffusion) is not before:
            self._emit(kind)

    def _app_changed(self, kind: str) -> None:
        if self.pinned[kind] is None:
            self._emit(kind)

    def _models_changed(self) -> None:
        for kind, entry in self.pinned.items():
            if entry is None:
                continue
            if entry not in self.state.models:          # the pinned model was closed: follow the app again
                self.pin(kind, None)
            elif entry.loaded is not self._pinned_loaded[kind]:   # a newer snapshot of a pinned run
                self._pinned_loaded[kind] = entry.loaded
                self._emit(kind)

    def _emit(self, kind: str) -> None:
        (self.vaeChanged if kind == "vae" else self.diffusionChanged).emit()
