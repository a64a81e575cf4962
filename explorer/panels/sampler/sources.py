"""Where the Sampler's z comes from, for the model it shows: the sources of core/latent/samplers.py's registry that
are fitted (the per-class mixture, the latent diffusion prior) and the latent map's region.

Each fitted source is fitted on a worker (a PanelTasks task named after it: "density", "diffusion-prior",
"region") the first time it is asked for each (model snapshot, dataset, settings); until it is there `ready` says
"not yet" and the grid on screen is marked out of date (`outOfDate(why)`); `fitted` asks for the grid again. A
region (a mixture fitted to images picked in the latent map) is valid for the model that encoded them only: another
model encodes the same images first.

`draw_grid` (run on the grid worker) draws a grid's z from the source and decodes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar

from core.images import to_uint8
from core.latent.density import LatentDensity, fit_region, fit_region_of_images
from core.latent.encoding import decode_latents
from core.latent.samplers import make_sampler
from core.latent.sampling import grid_latents
from core.models.protocol import DiscreteCodeModel, LatentVariableModel, is_vqvae
from explorer.panels.tasks import PanelTasks
from explorer.selection import ImageSelection
from explorer.state import AppState

FITTED = ("density", "diffusion-prior")         # the registry's sources fitted here (the prior needs no fit)
DOING = {"density": "fitting the density to {n} encoded training images…",
         "diffusion-prior": "fitting the diffusion prior…"}
FIT_FORMAT = {"density": "density %p%{eta}", "diffusion-prior": "diffusion prior %p%{eta}"}


class NotReady:
    """`ready`'s answer while the source is being fitted (or cannot be: the grid says why)."""


NOT_READY = NotReady()


class LatentSources(QObject):
    fitted = Signal()           # a source the grid waits for is there: sample again
    outOfDate = Signal(str)     # the grid on screen does not show the chosen source: why

    def __init__(self, state: AppState, tasks: PanelTasks, progress: QProgressBar) -> None:
        super().__init__(tasks)
        self.state = state
        self.tasks = tasks
        self.progress = progress
        self.fits: dict[str, tuple[tuple, Any]] = {}     # source name -> (key, fitted sampler)
        self._fitting: dict[str, tuple] = {}             # source name -> key of the fit running
        self.region: LatentDensity | None = None         # the mixture fitted to the map's selection ...
        self.region_model: LatentVariableModel | None = None    # ... with this model's latents
        self._region_fitting: LatentVariableModel | None = None
        self.selection: ImageSelection | None = None     # the selection the region is fitted to

    # ---- asking -------------------------------------------------------------------------------------------------
    def ready(self, name: str, settings: dict[str, Any], model: LatentVariableModel) -> Any:
        """What the grid draws z from for source `name`: None for the prior, a LatentDensity (mixture, region) or a
        fitted sampler; NOT_READY while it is being fitted (started here when it is not)."""
        for other in FITTED:
            if other != name:
                self.cancel(other)
        if name == "region":
            if self.selection is None:
                self.outOfDate.emit("send a selection here from the latent map first (Send to → Sampler)")
                return NOT_READY
            if self.region is None or self.region_model is not model:
                # another model shown (a newer snapshot, another entry): the same images, encoded by it
                if not (self.tasks.busy("region") and self._region_fitting is model):
                    self.fit_region(model)
                return NOT_READY
            return self.region
        if name not in FITTED:
            return None
        return self._fitted(name, settings, model)

    def stale(self, name: str, settings: dict[str, Any]) -> bool:
        """Source `name` needs a fit for the model and data shown now."""
        return name in FITTED and not _same(self.fits.get(name, (None,))[0], self._key(settings))

    def density(self) -> LatentDensity | None:
        """The fitted per-class mixture (the "density" source), if any."""
        fit = self.fits.get("density")
        return None if fit is None else fit[1].density

    def busy(self) -> bool:
        return any(self.tasks.busy(name) for name in (*FITTED, "region"))

    def cancel(self, name: str) -> None:
        self.tasks.cancel(name)
        self._fitting.pop(name, None)

    # ---- fitting ------------------------------------------------------------------------------------------------
    def _key(self, settings: dict[str, Any]) -> tuple:
        return (self.state.vae_model, self.state.dataset, *sorted((k, repr(v)) for k, v in settings.items()))

    def _fitted(self, name: str, settings: dict[str, Any], model: LatentVariableModel) -> Any:
        found = self.state.split_to_encode("train")
        if isinstance(found, str):
            what = "the fitted density" if name == "density" else f"the {name.replace('-', ' ')}"
            self.outOfDate.emit(f"{what} needs the model's training data. {found}")
            return NOT_READY
        vae, split = found
        key = self._key(settings)
        fit = self.fits.get(name)
        if fit is not None and _same(fit[0], key):
            return fit[1].density if name == "density" else fit[1]
        if self.tasks.running(name) and _same(self._fitting.get(name), key):
            return NOT_READY
        self._fitting[name] = key
        self.outOfDate.emit(DOING[name].format(n=len(split)))
        self.progress.setVisible(True)
        sampler = make_sampler(name, **settings)
        self.tasks.start(name, sampler.fit, vae, self.state.dataset, progress=self.progress,
                         progress_format=FIT_FORMAT[name], on_result=lambda done: self._on_fitted(name, done, key),
                         on_failed=lambda message, _details: self.outOfDate.emit(
                             f"the {name.replace('-', ' ')} could not be fitted: {message}"),
                         on_finished=lambda _stopped: self.progress.setVisible(self.busy_fitting()))
        return NOT_READY

    def busy_fitting(self) -> bool:
        return any(self.tasks.running(name) for name in (*FITTED, "region"))

    def _on_fitted(self, name: str, sampler: Any, key: tuple) -> None:
        if sampler is None:
            return
        self.fits[name] = (key, sampler)
        self._fitting.pop(name, None)
        self.fitted.emit()

    def fit_region(self, model: LatentVariableModel) -> str:
        """Start fitting the region of the selection sent here for `model` (on a worker: a few thousand points of a
        hierarchical VAE's few hundred dimensions take seconds); "" or why it cannot be."""
        selection = self.selection
        what = describe_selection(selection)
        if selection.model is model:
            job, args, kwargs = fit_region, (selection.latents, model.num_classes), {"origin": what}
            doing = f"fitting the region of {what}…"
        else:
            found = selection.problem_with(self.state.dataset) or self.state.split_to_encode("train")
            if isinstance(found, str):
                self.outOfDate.emit(f"the selection's images cannot be encoded by this model: {found}")
                return found
            job, args = fit_region_of_images, (model, self.state.dataset, selection.splits, selection.indices)
            kwargs = {"origin": f"{what}, encoded by this model"}
            doing = f"encoding {what} with the model this panel shows…"
        self.tasks.cancel("grid")
        self._region_fitting = model
        self.outOfDate.emit(doing)
        self.progress.setVisible(True)
        self.tasks.start("region", job, *args, **kwargs, progress=self.progress,
                         on_result=lambda region: self._on_region(region, model),
                         on_failed=lambda message, _details: self.outOfDate.emit(
                             f"the selection's region could not be fitted: {message}"),
                         on_finished=lambda _stopped: self.progress.setVisible(self.busy_fitting()))
        return ""

    def use_selection(self, selection: ImageSelection) -> None:
        self.selection = selection
        self.region, self.region_model = None, None

    def _on_region(self, region: LatentDensity | None, model: LatentVariableModel) -> None:
        if region is None or model is not self.state.vae_model:
            return
        self.region, self.region_model = region, model
        self.fitted.emit()


@torch.no_grad()
def draw_grid(model: LatentVariableModel, rows: list[int], n: int, *, temperature: float, seed: int,
              same_noise: bool, source: Any) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (rows * n, H, W, C), their z): a row per class, n per row, z from `source` (`ready`'s answer).

    The prior and a mixture keep the grid's own noise (`grid_latents`: the prior grid of a seed is what it always
    was). A fitted sampler (the diffusion prior) draws `sampler.sample(labels, Generator(seed))`, what `sample --from
    NAME --seed SEED` draws for the same rows; with `same_noise` each row is drawn from a generator of that seed, so
    every row starts from the same noise."""
    labels = np.repeat(np.asarray(rows, dtype=np.int64), n)
    if is_vqvae(model):
        return draw_code_grid(model, labels, temperature=temperature, seed=seed)
    if source is None or isinstance(source, LatentDensity):
        z = grid_latents(rows, n, model.latent_dim, temperature=temperature, seed=seed, same_noise=same_noise,
                         density=source)
    else:
        def drawn(row_labels: np.ndarray) -> np.ndarray:
            generator = torch.Generator().manual_seed(int(seed))
            return source.sample(row_labels, generator, temperature=temperature).numpy()

        z = np.concatenate([drawn(np.full(n, r)) for r in rows]) if same_noise else drawn(labels)
    z = np.ascontiguousarray(z, dtype=np.float32)
    return decode_latents(model, z, labels if model.num_classes > 0 else None), z


def draw_code_grid(model: DiscreteCodeModel, labels: np.ndarray, *, temperature: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A VQ-VAE's grid: (uint8 images (B, H, W, C), an empty (B, 0) z). Its code prior draws each image's code grid
    (a first stage without a prior draws each cell from the codebook's use): what `sample --seed SEED` draws."""
    images = model.sample(torch.as_tensor(labels), temperature=temperature,
                          generator=torch.Generator().manual_seed(int(seed)))
    return to_uint8(images), np.zeros((len(labels), 0), dtype=np.float32)


def describe_source(source: Any) -> tuple[str, str]:
    """(for the grid's title, for the status line) of where a grid's z came from."""
    if source is None:
        return "the prior N(0, I)", "the prior"
    if isinstance(source, LatentDensity):
        if source.origin:
            return f"a {source.describe()}", "the selection's region"
        return f"the fitted density ({source.describe()})", "the fitted density"
    return f"the {source.describe()}", f"the {source.name.replace('-', ' ')}"


def describe_selection(selection: ImageSelection) -> str:
    """The selection in words, for titles: "the 134 images sent from the latent map (lasso)". Sent, not selected: the
    map's selection may be gone (another model shown there) while this region, a hand-off, stays."""
    return f"the {len(selection)} images sent from the {selection.source}" + \
        (f" ({selection.description})" if selection.description else "")


def _same(a: tuple | None, b: tuple | None) -> bool:
    """The same (model, dataset, settings): the objects by identity, as a newer snapshot or a reloaded dataset is
    another object; the settings by value."""
    return (a is not None and b is not None and len(a) == len(b) and a[0] is b[0] and a[1] is b[1]
            and a[2:] == b[2:])
