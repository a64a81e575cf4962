"""What one panel looks at: the models shown app-wide, or a model pinned for this panel alone.

A `PanelView` stands in for `AppState` in a panel: it offers, as explicit typed properties, the attributes and
signals panels use (`vae`, `diffusion`, `dataset`, `vae_model`, `split_to_encode`, `vaeChanged`, the selection and
the hand-offs ...), so panels do not know whether they follow the models list's selection or a pin. Pinning a model
(`pin(kind, entry)`) makes this panel show it whatever is selected in the list, so two panels can show two models
side by side (a beta=0.3 and a beta=1 latent map, or the VAE in the sampler and another model in Denoise / Enhance).
Everything else (the models list, image hand-offs, status messages) is the app's state, reached through this object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal, SignalInstance

from explorer.state import AppState, ModelEntry, shape_problem

if TYPE_CHECKING:
    from core.data.datasets import Dataset, Split
    from core.models.protocol import LatentVariableModel
    from core.training.checkpoint import LoadedModel
    from explorer.handoffs import InterpolationEndpoints, RestorationImage, SamplerRegion
    from explorer.selection import ImageSelection
    from explorer.settings import PanelSettings


class PanelView(QObject):
    vaeChanged = Signal()
    diffusionChanged = Signal()
    datasetChanged = Signal()
    pinChanged = Signal()
    loadingChanged = Signal()   # the app's state.loading changed

    def __init__(self, state: AppState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.pinned: dict[str, ModelEntry | None] = {"vae": None, "diffusion": None}
        self._pinned_loaded: dict[str, Any] = {"vae": None, "diffusion": None}
        state.vaeChanged.connect(lambda: self._app_changed("vae"))
        state.diffusionChanged.connect(lambda: self._app_changed("diffusion"))
        state.datasetChanged.connect(self.datasetChanged)
        state.modelsChanged.connect(self._models_changed)
        state.loadingChanged.connect(self.loadingChanged)
        # slot -> the model loading for it (a bundled one a panel asked for: explorer/bundled.py): the app's own dict,
        # changed in place (a panel reads it only when it shows nothing of that slot, so a pin never hides it)
        self.loading: dict[str, str] = state.loading

    # ---- what panels read -----------------------------------------------------------------------------------------
    @property
    def vae(self) -> LoadedModel | None:
        entry = self.pinned["vae"]
        return entry.loaded if entry is not None else self.state.vae

    @property
    def diffusion(self) -> LoadedModel | None:
        entry = self.pinned["diffusion"]
        return entry.loaded if entry is not None else self.state.diffusion

    @property
    def dataset(self) -> Dataset | None:
        return self.state.dataset

    @property
    def vae_model(self) -> LatentVariableModel | None:
        vae = self.vae
        return None if vae is None else vae.model

    def split_to_encode(self, split: str) -> tuple[LoadedModel, Split] | str:
        problem = shape_problem(self.vae, self.dataset)
        return problem or (self.vae, self.dataset.split(split))

    def shown_entry(self, kind: str) -> ModelEntry | None:
        """The entry this panel shows for `kind`: its pin, else the app's selection."""
        return self.pinned[kind] or self.state.shown.get(kind)

    # ---- the app's state that a panel uses besides the models it shows (explicit: no attribute is forwarded
    # unseen; a panel that needs more of the app's state adds it here, typed) ---------------------------------------
    @property
    def snapshot_update(self) -> bool:
        """True while vaeChanged / diffusionChanged is a newer snapshot of the same run."""
        return self.state.snapshot_update

    @property
    def settings(self) -> PanelSettings:
        """The panels' persisted choices: `settings.value("<panel>.<name>", default)`, `set_value(key, value)`;
        saved with the workspace (explorer/settings.py)."""
        return self.state.settings

    @property
    def imageSelected(self) -> SignalInstance:   # the app's signals, under their own names
        return self.state.imageSelected

    @property
    def statusMessage(self) -> SignalInstance:
        return self.state.statusMessage

    # the selection and the hand-offs (explorer/handoffs.py)
    @property
    def selection(self) -> ImageSelection | None:
        return self.state.selection

    def set_selection(self, selection: ImageSelection | None) -> None:
        self.state.set_selection(selection)

    def send_selection(self, target: str) -> None:
        self.state.send_selection(target)

    def hand_off(self, value: InterpolationEndpoints | RestorationImage | SamplerRegion) -> None:
        self.state.hand_off(value)

    @property
    def interpolation_request(self) -> InterpolationEndpoints | None:
        return self.state.interpolation_request

    @property
    def restoration_request(self) -> RestorationImage | None:
        return self.state.restoration_request

    @property
    def sampler_region(self) -> SamplerRegion | None:
        return self.state.sampler_region

    @property
    def interpolationRequested(self) -> SignalInstance:
        return self.state.interpolationRequested

    @property
    def restorationRequested(self) -> SignalInstance:
        return self.state.restorationRequested

    @property
    def samplerRegionRequested(self) -> SignalInstance:
        return self.state.samplerRegionRequested

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
