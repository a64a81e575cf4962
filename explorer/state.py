"""The application's model of the session: every model it holds (the models list), the ones the panels show, and
the dataset.

Panels take an `AppState` in `__init__`, read from it, and listen to its signals; they write user choices back to it,
never to another panel (napari's layer list is the pattern). The models held here are CPU snapshots in eval mode: the
training thread never shares its live model with the panels.

The models list holds each model the user can look at: the bundled ones, each opened checkpoint, each training run
(its newest snapshot, marked training / completed / stopped / failed) and each followed run folder. One VAE and one
diffusion model are *shown* (`state.vae`, `state.diffusion`); selecting an entry shows it. A training run adds an
entry and never replaces what is shown, unless the user shows that run (then its newer snapshots are shown as they
come) or chose "follow training" (a new run is shown as soon as it has a model).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from explorer.handoffs import (
    INTERPOLATE,
    RESTORE,
    SAMPLER,
    TARGETS,
    InterpolationEndpoints,
    RestorationImage,
    SamplerRegion,
    endpoints_of_selection,
)
from explorer.settings import PanelSettings

if TYPE_CHECKING:
    from core.data.datasets import Dataset, Split
    from core.models.protocol import LatentVariableModel
    from core.training.checkpoint import LoadedModel
    from explorer.selection import ImageSelection

_ids = itertools.count(1)


@dataclass(eq=False)
class ModelEntry:
    """One model in the list. `run` identifies a training run or followed run folder (its snapshots replace
    `loaded` in the same entry); `status` is "" for a model from a file, else training / completed / stopped / ..."""

    loaded: LoadedModel
    name: str
    source: str                     # "bundled", "checkpoint", "training" or "run folder"
    status: str = ""
    run: str | None = None
    folder: str | None = None       # the run folder of a training run or followed folder (the workspace keeps it)
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def kind(self) -> str:
        return self.loaded.config.model_kind

    @property
    def headline(self) -> str:
        """The number that says how good it is, when known: validation ELBO for a VAE, else the loss."""
        m = self.loaded.metrics
        for key, label in (("elbo", "ELBO"), ("val_elbo", "val ELBO"), ("loss", "loss"), ("val_loss", "val loss")):
            if key in m:
                return f"{label} {m[key]:.4g}"
        return ""

    def describe(self) -> str:
        """Name and what state it is in, for the status bar and panel headers."""
        state = f"{self.status}, epoch {self.loaded.epoch}" if self.status else f"epoch {self.loaded.epoch}"
        return f"{self.name} ({state})"


def slot_of(kind: str) -> str:
    """The slot a model kind is shown in: a VQ-VAE shares the VAE's (`state.vae`): one of them is shown at a time."""
    return "vae" if kind == "vqvae" else kind


class ShownEntries(dict):
    """`state.shown`, keyed by slot: `shown.get(entry.kind)` reads a VQ-VAE's entry from the VAE slot, so closing a
    shown VQ-VAE shows the VAE shown before it, and the models list marks one shown model per slot."""

    def __getitem__(self, kind: str) -> ModelEntry | None:
        return super().__getitem__(slot_of(kind))

    def __setitem__(self, kind: str, entry: ModelEntry | None) -> None:
        super().__setitem__(slot_of(kind), entry)

    def get(self, kind: str, default: ModelEntry | None = None) -> ModelEntry | None:
        return super().get(slot_of(kind), default)


@dataclass(frozen=True)
class ClosedEntry:
    """A closed entry, where it was in the list and whether it was shown: what Undo needs."""

    entry: ModelEntry
    index: int
    was_shown: bool


class AppState(QObject):
    vaeChanged = Signal()          # the shown VAE changed: another entry, or a newer snapshot of the shown run
    diffusionChanged = Signal()    # the shown diffusion model changed
    datasetChanged = Signal()      # state.dataset was replaced
    modelsChanged = Signal()       # the models list changed: added, closed, renamed, a new snapshot or status
    imageSelected = Signal(str, int)   # (split name, index): a panel picked a dataset image for the others
    selectionChanged = Signal()    # state.selection (a set of dataset images picked in a panel) was replaced
    statusMessage = Signal(str)    # a short message for the status bar
    # Hand-offs (explorer/handoffs.py): the panel they are for observes its signal; the window only shows that panel.
    handedOff = Signal(str)        # a hand-off for "sampler", "interpolate" or "restore" was set (emitted first)
    interpolationRequested = Signal()   # state.interpolation_request was set
    restorationRequested = Signal()     # state.restoration_request was set
    samplerRegionRequested = Signal()   # state.sampler_region was set
    loadingChanged = Signal()      # state.loading changed: a model of a slot began or finished loading

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.vae: LoadedModel | None = None
        self.diffusion: LoadedModel | None = None
        self.dataset: Dataset | None = None
        self.models: list[ModelEntry] = []
        self.shown = ShownEntries(vae=None, diffusion=None)   # by slot (a VQ-VAE is shown in the VAE's)
        self.follow_training = False   # show a new training run as soon as it has a model
        self.snapshot_update = False   # True while vaeChanged/diffusionChanged is a newer snapshot of the same run
        self.selection: ImageSelection | None = None   # the images picked on the latent map (lasso, search ...)
        self.interpolation_request: InterpolationEndpoints | None = None   # the newest hand-off of each kind
        self.restoration_request: RestorationImage | None = None
        self.sampler_region: SamplerRegion | None = None
        self.settings = PanelSettings(self)   # the panels' persisted choices (explorer/settings.py)
        self._shown_order: list[ModelEntry] = []   # entries in the order they were shown, newest last
        self.last_closed: ClosedEntry | None = None   # what "Undo" in the models list puts back
        # slot -> what is loading for it (a bundled model loaded when a panel first needs it: explorer/bundled.py);
        # a panel with nothing shown for that slot says so instead of "none"
        self.loading: dict[str, str] = {}

    @property
    def vae_model(self) -> LatentVariableModel | None:
        """The VAE network itself (None when none is loaded)."""
        return None if self.vae is None else self.vae.model

    def split_to_encode(self, split: str) -> tuple[LoadedModel, Split] | str:
        """(the VAE, the dataset's `split`) when both are loaded and their images have the same shape; otherwise
        what is wrong, as a line for a panel's status."""
        return shape_problem(self.vae, self.dataset) or (self.vae, self.dataset.split(split))

    def set_selection(self, selection: ImageSelection | None) -> None:
        self.selection = selection
        self.selectionChanged.emit()

    def send_selection(self, target: str) -> None:
        """Hand the current selection to panel `target` ("sampler": its region; "interpolate": its first two images;
        "restore": its first image)."""
        sel = self.selection
        if sel is None:
            return
        if len(sel) == 0:
            self.statusMessage.emit("the selection is empty")
            return
        if target == INTERPOLATE:
            self.hand_off(endpoints_of_selection(sel))
        elif target == RESTORE:
            self.hand_off(RestorationImage(sel.splits[0], int(sel.indices[0]), sel.dataset,
                                           f"the first of {len(sel)} selected"))
        elif target == SAMPLER:
            self.hand_off(SamplerRegion(sel))
        else:
            raise ValueError(f"unknown target {target!r}; one of {TARGETS}")

    def hand_off(self, value: InterpolationEndpoints | RestorationImage | SamplerRegion) -> None:
        """Hold `value` for the panel it is meant for: `handedOff(target)` first (the window shows that panel, which
        reloads if it was hidden), then the value's own signal, which that panel observes."""
        if isinstance(value, InterpolationEndpoints):
            self.interpolation_request, target, signal = value, INTERPOLATE, self.interpolationRequested
        elif isinstance(value, RestorationImage):
            self.restoration_request, target, signal = value, RESTORE, self.restorationRequested
        elif isinstance(value, SamplerRegion):
            self.sampler_region, target, signal = value, SAMPLER, self.samplerRegionRequested
        else:
            raise TypeError(f"not a hand-off: {value!r}")
        self.handedOff.emit(target)
        signal.emit()

    def set_loading(self, kind: str, what: str) -> None:
        """`what` ("the bundled diffusion model") is loading for `kind`'s slot; "" when it is over."""
        if what:
            self.loading[slot_of(kind)] = what
        else:
            self.loading.pop(slot_of(kind), None)
        self.loadingChanged.emit()

    # ---- the models list ----------------------------------------------------------------------------------------
    def add_model(self, loaded: LoadedModel, *, source: str, name: str | None = None, status: str = "",
                  run: str | None = None, show: bool = True) -> ModelEntry:
        """Add a model to the list (shown at once unless `show` is False)."""
        entry = ModelEntry(loaded, name or _default_name(loaded, source), source, status, run)
        self.models.append(entry)
        self.modelsChanged.emit()
        if show:
            self.show(entry)
        return entry

    def entry_for_run(self, run: str) -> ModelEntry | None:
        return next((e for e in self.models if e.run == run), None)

    def update_run(self, run: str, loaded: LoadedModel | None = None, *, status: str | None = None,
                   name: str | None = None, source: str = "training") -> ModelEntry | None:
        """A training run (or followed run folder) has a newer snapshot and/or a new status. Its entry is created on
        its first model; shown panels follow it only when it is the shown entry (or `follow_training` is on and
        nothing shows it yet)."""
        entry = self.entry_for_run(run)
        if entry is None:
            if loaded is None:
                return None
            nothing_shown = self.shown[loaded.config.model_kind] is None
            return self.add_model(loaded, source=source, name=name, status=status or "training", run=run,
                                  show=self.follow_training or nothing_shown)
        if status is not None:
            entry.status = status
        if loaded is not None:
            entry.loaded = loaded
        self.modelsChanged.emit()
        if loaded is not None and self.shown.get(entry.kind) is entry:
            self.snapshot_update = True
            try:
                self._set_shown(entry)
            finally:
                self.snapshot_update = False
        return entry

    def show(self, entry: ModelEntry) -> None:
        """Make `entry` the model of its kind that the panels show."""
        if self.shown.get(entry.kind) is entry and self._current(entry.kind) is entry.loaded:
            return
        self._set_shown(entry)
        self.modelsChanged.emit()

    def rename(self, entry: ModelEntry, name: str) -> None:
        entry.name = name.strip() or entry.name
        self.modelsChanged.emit()

    def close(self, entry: ModelEntry, *, undoable: bool = True) -> None:
        """Drop `entry` from the list; if it was shown, the model of its kind shown before it is shown instead (the
        newest other one when none was). `undo_close()` puts it back."""
        if entry not in self.models:
            return
        index = self.models.index(entry)
        was_shown = self.shown.get(entry.kind) is entry
        self.models.remove(entry)
        if undoable:
            self.last_closed = ClosedEntry(entry, index, was_shown)
        if was_shown:
            slot = slot_of(entry.kind)
            previous = [e for e in self._shown_order if slot_of(e.kind) == slot and e in self.models]
            others = previous or [e for e in self.models if slot_of(e.kind) == slot]
            if others:
                self._set_shown(others[-1])
            else:
                self.shown[entry.kind] = None
                self._assign(entry.kind, None)
        self.modelsChanged.emit()

    def undo_close(self) -> ModelEntry | None:
        """Put the last closed entry back where it was (shown again if it was); None when there is nothing to undo."""
        closed, self.last_closed = self.last_closed, None
        if closed is None or closed.entry in self.models:
            return None
        self.models.insert(min(closed.index, len(self.models)), closed.entry)
        if closed.was_shown:
            self._set_shown(closed.entry)
        self.modelsChanged.emit()
        return closed.entry

    def _current(self, kind: str) -> LoadedModel | None:
        return self.diffusion if kind == "diffusion" else self.vae

    def _set_shown(self, entry: ModelEntry) -> None:
        self.shown[entry.kind] = entry
        if not self._shown_order or self._shown_order[-1] is not entry:
            self._shown_order = [e for e in self._shown_order if e is not entry and e in self.models] + [entry]
        self._assign(entry.kind, entry.loaded)

    def _assign(self, kind: str, loaded: LoadedModel | None) -> None:
        if kind == "diffusion":
            self.diffusion = loaded
            self.diffusionChanged.emit()
        else:
            self.vae = loaded
            self.vaeChanged.emit()

    # ---- what the window and older callers use ------------------------------------------------------------------
    def set_vae(self, loaded: LoadedModel | None) -> None:
        """Show `loaded` as the VAE (it joins the list as an opened checkpoint when it is not in it)."""
        self._set_or_add(loaded, "vae")

    def set_diffusion(self, loaded: LoadedModel | None) -> None:
        self._set_or_add(loaded, "diffusion")

    def set_model(self, loaded: LoadedModel, *, source: str | None = None) -> ModelEntry:
        """Add a model from a file (a checkpoint; "bundled" for the ones in resources/) and show it."""
        from core.paths import RESOURCES

        if source is None:
            bundled = loaded.path is not None and Path(loaded.path).resolve().parent == RESOURCES.resolve()
            source = "bundled" if bundled else "checkpoint"
        return self.add_model(loaded, source=source)

    def _set_or_add(self, loaded: LoadedModel | None, kind: str) -> None:
        if loaded is None:
            self.shown[kind] = None
            self._assign(kind, None)
            self.modelsChanged.emit()
            return
        entry = next((e for e in self.models if e.loaded is loaded), None)
        if entry is None:
            self.set_model(loaded)
        else:
            self.show(entry)

    def set_dataset(self, dataset: Dataset | None) -> None:
        self.dataset = dataset
        self.datasetChanged.emit()


VQ_LINE = ("This panel needs a continuous-latent VAE; the shown model is a VQ-VAE (a grid of discrete codes): see "
           "the Codes tab.")


def shape_problem(vae: LoadedModel | None, dataset: Dataset | None) -> str:
    """What keeps a panel from encoding `dataset` with `vae` ("" when nothing), as a line for the panel's status."""
    missing = " and ".join(what for what, absent in (("a VAE", vae is None), ("a dataset", dataset is None))
                           if absent)
    if missing:
        return f"Load {missing} to use this panel (File > Open checkpoint, or train one)."
    if vae.config.model_kind == "vqvae":
        return VQ_LINE
    meta, mmeta = dataset.meta, vae.meta
    if (meta.channels, meta.image_size) != (mmeta.channels, mmeta.image_size):
        return (f"The VAE was trained on {mmeta.channels}x{mmeta.image_size}px images, the dataset has "
                f"{meta.channels}x{meta.image_size}px: load a matching dataset.")
    return ""


def _default_name(loaded: LoadedModel, source: str) -> str:
    if loaded.path is not None:
        path = Path(loaded.path)
        # A run folder's checkpoints are all called best/last: the run's folder name says which run.
        return f"{path.parent.parent.name}/{path.stem}" if path.parent.name == "checkpoints" else path.name
    return f"{source} {loaded.config.model_kind}"
