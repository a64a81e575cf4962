"""The sampler grid: one row per chosen class, N samples each, with z from a source of core/latent/samplers.py's
registry (the CLI's `--from`): the prior N(0, temperature^2 I), a density fitted to the encoded training set (a
Gaussian mixture per class, core/latent/density.py: "ex-post density estimation") or a learned latent diffusion prior
(core/latent/diffusion_prior.py), or the region of a selection sent from the latent map ("Send to → Sampler"): a
mixture fitted to the selected images' latents, valid for the model that encoded them only.

The panel is a composition of small views: the controls (controls.py), the sources of z and their fits
(sources.py), the grid with its title and the selected sample with its hand-off (results.py), and the diffusion
model's grid beside it (comparison.py). A fitted source is fitted on a worker the first time it is asked for each
model snapshot; until it is there, the grid on screen (of the prior, or of an older model) is marked out of date
above it. The title always says where the shown grid's z came from.

"Same noise across rows" gives every row the same N latents, so a column differs only in class: z carries the style,
the label the content. Grids are sampled on a Worker: 6 ms for the bundled digits VAE from the prior, but 150 ms for
a CIFAR-10 model on a 2-core CPU (and a diffusion prior's solver steps), too long for the GUI thread while the
temperature slider moves. A change made while a grid is being sampled is not queued one by one: the newest settings
are sampled as soon as the running grid is done.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QVBoxLayout, QWidget

from core.latent.density import LatentDensity
from core.models.protocol import is_vqvae
from explorer.handoffs import SAMPLER, Endpoint, InterpolationEndpoints
from explorer.panel import Panel
from explorer.panels.sampler.comparison import DiffusionComparison
from explorer.panels.sampler.controls import SOURCE_NAMES, SamplerControls
from explorer.panels.sampler.results import SampleGridView, SelectedSample
from explorer.panels.sampler.sources import NOT_READY, LatentSources, describe_selection, describe_source, draw_grid
from explorer.panels.tasks import PanelTasks
from explorer.selection import ImageSelection
from explorer.settings import Persisted
from explorer.state import AppState


class SamplerPanel(Panel, QWidget):
    title = "Sampler"
    uses = ("vae", "diffusion")
    accepts = (SAMPLER,)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.images: np.ndarray | None = None     # the VAE grid last shown, uint8 (rows * n, H, W, C)
        self._z: np.ndarray | None = None         # ... and its latents
        self.rows: list[int] = []
        self.vae_ms = 0.0
        self.selected: int | None = None
        self._resample = False                    # settings changed while a grid was being sampled
        self.tasks = PanelTasks(self)             # "grid"; the fits "density", "diffusion-prior", "region"; "diffusion"
        self.controls = c = SamplerControls()
        # The temperature and source chosen last time (explorer/settings.py); a region needs a new selection first.
        Persisted(state.settings, "sampler.temperature", 1.0, get=c.temperature.value, set_=c.temperature.setValue,
                  changed=c.temperature.valueChanged, owner=c.temperature)
        Persisted(state.settings, "sampler.source", "prior", get=c.source_name, changed=c.source.currentIndexChanged,
                  set_=lambda s: c.source.setCurrentIndex(SOURCE_NAMES.index(s)) if s in SOURCE_NAMES[:-1] else None,
                  owner=c.source)
        self.sources = LatentSources(state, self.tasks, self.controls.fit_progress)
        self.results = SampleGridView()
        self.comparison = DiffusionComparison(state, self.tasks)
        self.picked = SelectedSample()
        self._build()
        state.vaeChanged.connect(self._on_vae_changed)
        state.diffusionChanged.connect(self._on_diffusion_changed)
        state.loadingChanged.connect(self._on_diffusion_changed)   # the bundled DDPM loads when this tab is first shown
        state.datasetChanged.connect(self._on_dataset_changed)
        state.samplerRegionRequested.connect(self._on_region_requested)
        self._on_vae_changed()
        self._on_diffusion_changed()

    def _build(self) -> None:
        c, r, d = self.controls, self.results, self.comparison
        self.status = QLabel("")
        self.status.setWordWrap(True)
        # the views' widgets that callers (and tests) reach through the panel
        self.columns, self.source, self.temperature, self.seed = c.columns, c.source, c.temperature, c.seed
        self.components, self.covariance, self.fit_steps, self.solver_steps = \
            c.components, c.covariance, c.fit_steps, c.solver_steps
        self.class_list, self.same_noise, self.compare, self.regen_btn = \
            c.class_list, c.same_noise, c.compare, c.regen_btn
        self.match_spread = c.match_spread
        self.grid, self.vae_title = r.grid, r.title
        self.diff_box, self.diff_grid, self.diff_title = d, d.grid, d.title
        self.large, self.send_btn = self.picked.large, self.picked.send_btn
        self.chosen_classes = c.chosen_classes
        c.changed.connect(self.regenerate)
        c.regenerateClicked.connect(lambda: self.regenerate(new_seed=True))
        c.exportClicked.connect(self._export_dialog)
        c.compareToggled.connect(self._on_compare)
        self.sources.fitted.connect(self.regenerate)
        self.sources.outOfDate.connect(r.mark_out_of_date)
        self.sources.outOfDate.connect(self.status.setText)      # and on the status line below ("fitting …")
        r.grid.clicked.connect(self.select)
        self.picked.sendClicked.connect(self._send)

        grids = QSplitter()
        grids.addWidget(r)
        grids.addWidget(d)
        outer = QSplitter()
        outer.addWidget(grids)
        outer.addWidget(self.picked)
        outer.setStretchFactor(0, 4)
        outer.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(c)
        lay.addWidget(outer, 1)
        lay.addWidget(self.status)

    # ---- what the Sampler samples from ------------------------------------------------------------------------------
    @property
    def density(self) -> LatentDensity | None:
        """The per-class mixture fitted to the shown model's training set (the "fitted density" source)."""
        return self.sources.density()

    @property
    def region(self) -> LatentDensity | None:
        """The mixture fitted to the selection sent from the latent map."""
        return self.sources.region

    @property
    def _region_model(self):
        return self.sources.region_model

    def _on_vae_changed(self) -> None:
        vae = self.state.vae
        conditional = vae is not None and vae.model.num_classes > 0
        self.controls.set_classes(list(vae.meta.class_names) if conditional else None)
        self.regenerate()

    def _on_dataset_changed(self) -> None:
        if self.sources.stale(self.controls.source_name(), self.controls.source_settings()):
            self.regenerate()

    def _on_diffusion_changed(self) -> None:
        has = self.state.diffusion is not None
        self.compare.setEnabled(has)
        self.compare.setText("compare with diffusion (loading…)" if not has and "diffusion" in self.state.loading
                             else "compare with diffusion")
        if not has:
            self.compare.setChecked(False)
        elif self.compare.isChecked():
            self.comparison.start(self.rows, self.columns.value(), self.seed.value(), self.vae_ms)

    def _on_region_requested(self) -> None:
        """A selection was sent here (state.sampler_region): sample its region; the status bar says how."""
        request = self.state.sampler_region
        if request is not None:
            self.state.statusMessage.emit(self.use_selection(request.selection))

    def use_selection(self, selection: ImageSelection) -> str:
        """Sample from the region of latent space that `selection` (images picked in the latent map) covers: a mixture
        fitted to their latents, with the selection's classes ticked. When this panel shows another model (a pin, a
        newer snapshot) than the one that encoded them, the images are encoded by this panel's model first (on a
        worker); a later model (the next training snapshot) refits the same images. Returns a line for the status
        bar."""
        model = self.state.vae_model
        if model is None:
            return "load a VAE in the Sampler to sample the selection's region"
        if len(selection) < 2:
            return "select at least two images to sample from their region"
        classes = sorted({int(c) for c in selection.labels}) if model.num_classes else []
        self.controls.use_region(classes)
        self.sources.use_selection(selection)
        names = self.state.vae.meta.class_names
        line = f"sampling from the region of {describe_selection(selection)}" + \
            (f", classes {', '.join(names[c] for c in classes)}" if classes else "")
        problem = self.sources.fit_region(model)
        if problem:
            return problem
        return line + ("" if selection.model is model else " (encoding them with the Sampler's model first)")

    # ---- sampling ---------------------------------------------------------------------------------------------------
    def regenerate(self, *, new_seed: bool = False) -> None:
        if new_seed:
            self.controls.next_seed()
        model = self.state.vae_model
        settings = self.controls.settings(model is not None and model.num_classes > 0)
        self.rows = list(settings.rows)
        if model is None or not self.rows:
            self.results.clear()
            self.images = None
            self.status.setText("Load a VAE to sample from it." if model is None else "Tick at least one class.")
            return
        if self.tasks.busy("grid"):
            self._resample = True                 # sampled with the newest settings once the running grid is done
            return
        # a VQ-VAE's code prior draws its grids: the source of z does not apply
        source = None if is_vqvae(model) else self.sources.ready(settings.source, settings.source_settings, model)
        if source is NOT_READY:
            return                                # being fitted: the grid follows when it is there
        self._resample = False
        started = time.perf_counter()
        self.tasks.start("grid", draw_grid, model, self.rows, settings.n, temperature=settings.temperature,
                         seed=settings.seed, same_noise=settings.same_noise, source=source,
                         on_result=lambda drawn: self._on_grid(*drawn, settings, source, started),
                         status=lambda text: self.status.setText(f"sampling {text}"),
                         on_finished=self._on_grid_done)

    def is_sampling(self) -> bool:
        """True while a VAE grid is being sampled, a source fitted, or a grid for newer settings is still due."""
        return self.tasks.busy("grid") or self.sources.busy() or self._resample

    def _on_grid(self, images: np.ndarray, z: np.ndarray, settings, source, started: float) -> None:
        if self.state.vae is None:
            return
        self.vae_ms = (time.perf_counter() - started) * 1000
        self.images, self._z = images, z
        conditional = self.state.vae.model.num_classes > 0
        names = self.state.vae.meta.class_names
        vq = is_vqvae(self.state.vae_model)
        title, short = ("its code prior", "the code prior") if vq else describe_source(source)
        self.results.show_grid(images, settings.n, [names[c] for c in settings.rows] if conditional else None,
                               f"{'VQ-VAE, code grids' if vq else 'VAE, z'} from {title}: {len(images)} samples in "
                               f"{self.vae_ms:.0f} ms")
        self.status.setText(f"seed {settings.seed}, temperature {settings.temperature:.2f}" +
                            (", same noise in every row" if settings.same_noise and conditional else "") +
                            f", {'codes' if vq else 'z'} from {short}")
        self.selected = None
        self.picked.show_sample(None)
        if self.compare.isChecked():   # the newest rows, columns and seed: a grid of older ones starts nothing
            self.comparison.start(self.rows, self.columns.value(), self.seed.value(), self.vae_ms)

    def _on_grid_done(self, _stopped: bool) -> None:
        if self._resample:
            self.regenerate()

    def select(self, index: int) -> None:
        if self.images is None or not 0 <= index < len(self.images):
            return
        self.selected = index
        self.grid.set_highlight(index)
        row = index // self.columns.value()
        label = self.rows[row] if row < len(self.rows) else 0
        names = self.state.vae.meta.class_names
        caption = names[label] if self.state.vae_model.num_classes else f"sample {index}"
        self.picked.show_sample(self.images[index], caption)

    def _send(self) -> None:
        if self.selected is None or self._z is None or not self._z.shape[1]:   # a VQ-VAE's samples have no z
            return
        row = self.selected // self.columns.value()
        end = Endpoint(self._z[self.selected].copy(), int(self.rows[row]), self.state.vae_model)
        self.state.hand_off(InterpolationEndpoints((end,), "a sample of the Sampler"))

    # ---- diffusion comparison, export, shutdown ---------------------------------------------------------------------
    @property
    def diffusion_runs(self) -> int:
        return self.comparison.runs

    def _on_compare(self, on: bool) -> None:
        self.comparison.setVisible(on)
        if on:
            self.comparison.start(self.rows, self.columns.value(), self.seed.value(), self.vae_ms)
        else:
            self.comparison.cancel()

    def shutdown(self) -> None:
        self.tasks.shutdown()

    def export_png(self, path: str) -> None:
        """The VAE grid (with its row labels) as PNG."""
        self.grid.save_png(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export sample grid", "samples.png", "PNG (*.png)")
        if path:
            self.export_png(path)
