"""The sampler grid: one row per chosen class, N samples each, from z ~ N(0, temperature^2 I) or from a density fitted
to the encoded training set (a Gaussian mixture per class, core/latent/density.py: "ex-post density estimation").

A selection sent from the latent map ("Send to → Sampler") becomes a third source: a mixture fitted to the selected
images' latents (core/latent/density.py: fit_region), valid for the model that encoded them only.

The density is fitted on a worker (PanelTasks "density") the first time it is asked for each model snapshot; until it
is there, the grid on screen (of the prior, or of an older model) is marked out of date above it. The title always
says where the shown grid's z came from.

"Same noise across rows" gives every row the same N latents, so a column differs only in class: z carries the style,
the label the content. Grids are sampled on a Worker: 6 ms for the bundled digits model, but 150 ms for a CIFAR-10 model
on a 2-core CPU, too long for the GUI thread while the temperature slider moves. A change made while a grid is being
sampled is not queued one by one: the newest settings are sampled as soon as the running grid is done. The diffusion
comparison samples for seconds and runs as its own task (PanelTasks) with progress and cancel.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from core.latent.density import DEFAULT_COMPONENTS, fit_density, fit_region, fit_region_of_images
from core.latent.sampling import diffusion_grid, grid_latents, sample_grid
from explorer.handoffs import SAMPLER, Endpoint, InterpolationEndpoints
from explorer.panel import Panel
from explorer.panels.tasks import PanelTasks
from explorer.selection import ImageSelection
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_widgets import PixelView

SOURCES = ("prior N(0, I)", "fitted density (per-class GMM)", "region of the map's selection")
PRIOR, DENSITY, REGION = range(3)


class SamplerPanel(Panel, QWidget):
    title = "Sampler"
    uses = ("vae", "diffusion")
    accepts = (SAMPLER,)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.images: np.ndarray | None = None     # the VAE grid last shown, uint8 (rows * n, H, W, C)
        self.rows: list[int] = []
        self.vae_ms = 0.0
        self.selected: int | None = None
        self._z: np.ndarray | None = None
        self._diff_key: tuple | None = None       # settings of the diffusion grid shown or being sampled
        self.diffusion_runs = 0
        self._resample = False                    # settings changed while a grid was being sampled
        self._title = ""                          # the title of the grid on screen (what it shows)
        self._fitting: tuple | None = None        # (model, dataset) of the density fit running
        self.density = None                       # the fitted LatentDensity of `_density_for`
        self._density_for: tuple | None = None    # (model, dataset) the density was fitted to
        self.region = None                        # a LatentDensity fitted to the latent map's selection
        self._region_model = None                 # the network whose latents `region` was fitted to
        self._region_fitting = None               # the network a "region" task encodes the selection with
        self._region_selection = None             # the ImageSelection the region was fitted to
        self.tasks = PanelTasks(self)             # "grid" (the VAE grid), "density" / "region" (fits), "diffusion"
        self._build()
        state.vaeChanged.connect(self._on_vae_changed)
        state.diffusionChanged.connect(self._on_diffusion_changed)
        state.datasetChanged.connect(self._on_dataset_changed)
        state.samplerRegionRequested.connect(self._on_region_requested)
        self._on_vae_changed()
        self._on_diffusion_changed()

    def _build(self) -> None:
        self.class_list = QListWidget()
        self.class_list.setFlow(QListWidget.Flow.LeftToRight)
        self.class_list.setWrapping(True)
        self.class_list.setMaximumHeight(30)
        self.class_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.class_list.itemChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.columns = QSpinBox()
        self.columns.setRange(1, 32)
        self.columns.setValue(10)
        self.columns.setPrefix("N = ")
        self.columns.valueChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.temperature = QSlider(Qt.Orientation.Horizontal)
        self.temperature.setRange(0, 200)           # hundredths: 0.00 .. 2.00
        self.temperature.setValue(100)
        self.temperature.setMinimumWidth(120)
        self.temperature.setToolTip("scale of the noise: the prior's standard deviation, or the spread of each "
                                    "component of the fitted density around its mean")
        self.temp_label = QLabel("temperature 1.00")
        self.temperature.valueChanged.connect(self._on_temperature)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.seed.setPrefix("seed ")
        self.seed.setMaximumWidth(130)
        self.seed.valueChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.regen_btn = QPushButton("Regenerate")
        self.regen_btn.setToolTip("new noise (next seed)")
        self.regen_btn.clicked.connect(lambda: self.regenerate(new_seed=True))
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.source.model().item(REGION).setEnabled(False)   # until a selection is sent here from the latent map
        self.source.setToolTip("where z comes from: the prior, a Gaussian mixture per class fitted to the posterior "
                               "means of the training images (fitted once per model, on the first use), or a mixture "
                               "fitted to the images selected in the latent map (Send to → Sampler there)")
        self.source.currentIndexChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.components = QSpinBox()
        self.components.setRange(1, 64)
        self.components.setValue(DEFAULT_COMPONENTS)
        self.components.setSuffix(" Gaussians per class")
        self.components.setToolTip("Gaussian components per class in the fitted density (more: closer to the "
                                   "training images' own latents)")
        self.covariance = QComboBox()
        self.covariance.addItems(["full covariance", "diagonal covariance"])
        self.covariance.setToolTip("each component's covariance: full keeps the correlations between latent units")
        for w in (self.components, self.covariance):
            w.setVisible(False)
        self.components.valueChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.covariance.currentIndexChanged.connect(lambda _: self.regenerate(new_seed=False))
        self.source.currentIndexChanged.connect(self._show_density_settings)
        self.density_progress = QProgressBar()
        self.density_progress.setMaximumWidth(190)
        self.density_progress.setVisible(False)
        self.same_noise = QCheckBox("same noise across rows")
        self.same_noise.toggled.connect(lambda _: self.regenerate(new_seed=False))
        self.compare = QCheckBox("compare with diffusion")
        self.compare.toggled.connect(self._on_compare)
        self.export_btn = QPushButton("Export PNG…")
        self.export_btn.clicked.connect(self._export_dialog)

        # two rows, so the panel fits a laptop screen beside the models list: what to sample, then which classes
        # and how to show them
        top = QHBoxLayout()
        for w in (self.columns, self.source, self.components, self.covariance, self.density_progress, self.temp_label,
                  self.temperature, self.seed, self.regen_btn):
            top.addWidget(w)
        top.addStretch(1)
        second = QHBoxLayout()
        second.addWidget(self.class_list, 1)
        for w in (self.same_noise, self.compare, self.export_btn):
            second.addWidget(w)

        self.grid = ImageGrid()
        self.grid.clicked.connect(self.select)
        self.vae_title = QLabel("VAE")
        self.vae_title.setWordWrap(True)    # titles and "out of date" notes wrap; they never widen the window
        self.diff_grid = ImageGrid()
        self.diff_title = QLabel("diffusion")
        self.diff_title.setWordWrap(True)
        self.diff_progress = QProgressBar()
        self.diff_cancel = QPushButton("Cancel")
        self.diff_cancel.clicked.connect(self._cancel_diffusion)
        self.diff_box = QWidget()
        dl = QGridLayout(self.diff_box)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.diff_title, 0, 0)
        dl.addWidget(self.diff_progress, 0, 1)
        dl.addWidget(self.diff_cancel, 0, 2)
        dl.addWidget(self.diff_grid, 1, 0, 1, 3)
        self.diff_box.setVisible(False)

        self.large = PixelView(minimum=128)
        self.large.setMaximumHeight(280)
        self.send_btn = QPushButton("Send to interpolation")
        self.send_btn.setEnabled(False)
        self.send_btn.clicked.connect(self._send)
        side = QVBoxLayout()
        side.addWidget(QLabel("selected sample"))
        side.addWidget(self.large, 1)
        side.addWidget(self.send_btn)
        side.addStretch(0)
        side_w = QWidget()
        side_w.setLayout(side)

        vae_box = QWidget()
        vl = QVBoxLayout(vae_box)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(self.vae_title)
        vl.addWidget(self.grid, 1)
        grids = QSplitter()
        grids.addWidget(vae_box)
        grids.addWidget(self.diff_box)
        outer = QSplitter()
        outer.addWidget(grids)
        outer.addWidget(side_w)
        outer.setStretchFactor(0, 4)
        outer.setStretchFactor(1, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(second)
        lay.addWidget(outer, 1)
        lay.addWidget(self.status)

    # ---- state ------------------------------------------------------------------------------------------------------
    def _on_vae_changed(self) -> None:
        with signals_blocked(self.class_list):
            self.class_list.clear()
            vae = self.state.vae
            conditional = vae is not None and vae.model.num_classes > 0
            if conditional:
                for name in vae.meta.class_names:
                    item = QListWidgetItem(name)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Checked)
                    self.class_list.addItem(item)
            self.class_list.setVisible(conditional)
            self.same_noise.setEnabled(conditional)
        self.regenerate(new_seed=False)

    def _on_dataset_changed(self) -> None:
        fitted = self.density is not None and _same(
            self._density_for, (self.state.vae_model, self.state.dataset, *self.density_settings().values()))
        if self.uses_density() and not fitted:
            self.regenerate(new_seed=False)

    def _on_diffusion_changed(self) -> None:
        has = self.state.diffusion is not None
        self.compare.setEnabled(has)
        if not has:
            self.compare.setChecked(False)
        elif self.compare.isChecked():
            self._start_diffusion()

    def chosen_classes(self) -> list[int]:
        return [i for i in range(self.class_list.count())
                if self.class_list.item(i).checkState() == Qt.CheckState.Checked]

    def _on_temperature(self, v: int) -> None:
        self.temp_label.setText(f"temperature {v / 100:.2f}")
        self.regenerate(new_seed=False)

    # ---- sampling ---------------------------------------------------------------------------------------------------
    def regenerate(self, *, new_seed: bool = False) -> None:
        if new_seed:
            with signals_blocked(self.seed):
                self.seed.setValue(self.seed.value() + 1)
        model = self.state.vae_model
        if model is None:
            self.grid.clear()
            self.images = None
            self.status.setText("Load a VAE to sample from it.")
            return
        conditional = model.num_classes > 0
        self.rows = self.chosen_classes() if conditional else [0]
        if not self.rows:
            self.grid.clear()
            self.images = None
            self.status.setText("Tick at least one class.")
            return
        if self.tasks.busy("grid"):
            self._resample = True                 # sampled with the newest settings once the running grid is done
            return
        density = None
        if self.source.currentIndex() == REGION:
            self._cancel_density_fit()
            if self.region is None or self._region_model is not model:
                # another model shown (a newer snapshot, another entry): the same images, encoded by it
                if not (self.tasks.busy("region") and self._region_fitting is model):
                    self._fit_region(self._region_selection, model)
                return
            density = self.region
        elif self.uses_density():
            density = self._density_ready(model)
            if density is None:
                return                            # being fitted: the grid follows when it is there
        else:
            self._cancel_density_fit()
        n, temp, seed = self.columns.value(), self.temperature.value() / 100, self.seed.value()
        same = self.same_noise.isChecked()
        settings = (list(self.rows), n, temp, seed, same, conditional, density)
        self._resample = False
        started = time.perf_counter()
        self.tasks.start("grid", sample_grid, model, list(self.rows), n, temperature=temp, seed=seed, same_noise=same,
                         density=density, on_result=lambda images: self._on_grid(images, settings, started),
                         status=lambda text: self.status.setText(f"sampling {text}"),
                         on_finished=self._on_grid_done)

    def is_sampling(self) -> bool:
        """True while a VAE grid is being sampled, a density fitted, or a grid for newer settings is still due."""
        return self.tasks.busy("grid") or self.tasks.busy("density") or self.tasks.busy("region") or self._resample

    # ---- the fitted density -----------------------------------------------------------------------------------------
    def uses_density(self) -> bool:
        return self.source.currentIndex() == DENSITY

    def _show_density_settings(self) -> None:
        for w in (self.components, self.covariance):
            w.setVisible(self.uses_density())

    def density_settings(self) -> dict:
        return {"components": self.components.value(),
                "covariance": "diag" if self.covariance.currentIndex() == 1 else "full"}

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
        with signals_blocked(self.class_list):
            for i in range(self.class_list.count()):
                ticked = Qt.CheckState.Checked if i in classes else Qt.CheckState.Unchecked
                self.class_list.item(i).setCheckState(ticked)
        self.source.model().item(REGION).setEnabled(True)
        with signals_blocked(self.source):
            self.source.setCurrentIndex(REGION)
        self._show_density_settings()
        self._region_selection = selection
        self.region, self._region_model = None, None
        names = self.state.vae.meta.class_names
        line = f"sampling from the region of {_what(selection)}" + \
            (f", classes {', '.join(names[c] for c in classes)}" if classes else "")
        problem = self._fit_region(selection, model)
        if problem:
            return problem
        return line + ("" if selection.model is model else " (encoding them with the Sampler's model first)")

    def _fit_region(self, selection, model) -> str:
        """Start fitting the region of `selection` for `model` (on a worker: a few thousand points of a hierarchical
        VAE's few hundred dimensions take seconds); "" or why it cannot be."""
        what = _what(selection)
        if selection.model is model:
            job, args, kwargs = fit_region, (selection.latents, model.num_classes), {"origin": what}
            doing = f"fitting the region of {what}…"
        else:
            found = selection.problem_with(self.state.dataset) or self.state.split_to_encode("train")
            if isinstance(found, str):
                self._mark_out_of_date(f"the selection's images cannot be encoded by this model: {found}")
                return found
            job, args = fit_region_of_images, (model, self.state.dataset, selection.splits, selection.indices)
            kwargs = {"origin": f"{what}, encoded by this model"}
            doing = f"encoding {what} with the model this panel shows…"
        self.tasks.cancel("grid")
        self._region_fitting = model
        self._mark_out_of_date(doing)
        self.density_progress.setVisible(True)
        self.tasks.start("region", job, *args, **kwargs, progress=self.density_progress,
                         on_result=lambda region: self._on_region(region, model),
                         on_failed=lambda message, _details: self._mark_out_of_date(
                             f"the selection's region could not be fitted: {message}"),
                         on_finished=lambda _stopped: self.density_progress.setVisible(False))
        return ""

    def _on_region(self, region, model) -> None:
        if region is None or model is not self.state.vae_model:
            return
        self.region, self._region_model = region, model
        self.regenerate(new_seed=False)

    def _density_ready(self, model) -> object | None:
        """The density of `model` and the loaded training data; None while it is being fitted (started here when it
        is not) or when it cannot be (the grid on screen is then marked out of date, saying why)."""
        found = self.state.split_to_encode("train")
        if isinstance(found, str):
            self._mark_out_of_date(f"the fitted density needs the model's training data. {found}")
            return None
        vae, split = found
        settings = self.density_settings()
        key = (model, self.state.dataset, *settings.values())
        if self.density is not None and _same(self._density_for, key):
            return self.density
        if self.tasks.running("density") and _same(self._fitting, key):
            return None
        self._fitting = key
        self._mark_out_of_date(f"fitting the density to {len(split)} encoded training images…")
        self.density_progress.setVisible(True)
        self.tasks.start("density", fit_density, model, split, **settings, loaded=vae, progress=self.density_progress,
                         progress_format="density %p%{eta}",
                         on_result=lambda density: self._on_density(density, key),
                         on_failed=lambda message, _details: self._mark_out_of_date(
                             f"the density could not be fitted: {message}"),
                         on_finished=lambda _stopped: self.density_progress.setVisible(False))
        return None

    def _on_density(self, density, key: tuple) -> None:
        if density is None:
            return
        self.density, self._density_for, self._fitting = density, key, None
        self.regenerate(new_seed=False)

    def _cancel_density_fit(self) -> None:
        self.tasks.cancel("density")
        self._fitting = None

    def _mark_out_of_date(self, why: str) -> None:
        """Say above the grid that it does not show the chosen settings (or that there is none yet), and why."""
        shown = self._title or "VAE: no grid yet"
        self.vae_title.setText(f"{shown}  —  out of date: {why}" if self.images is not None else f"VAE: {why}")
        self.vae_title.setStyleSheet("color: #a05a00;")

    def _on_grid(self, images: np.ndarray, settings: tuple, started: float) -> None:
        if self.state.vae is None:
            return
        rows, n, temp, seed, same, conditional, density = settings
        self.vae_ms = (time.perf_counter() - started) * 1000
        self.images = images
        self._z = grid_latents(rows, n, self.state.vae.model.latent_dim, temperature=temp, seed=seed,
                               same_noise=same, density=density)
        names = self.state.vae.meta.class_names
        self.grid.set_images(images, columns=n, row_labels=[names[c] for c in rows] if conditional else None)
        source = f"the {SOURCES[PRIOR]}" if density is None else f"a {density.describe()}" if density.origin else \
            f"the fitted density ({density.describe()})"
        self._title = f"VAE, z from {source}: {len(images)} samples in {self.vae_ms:.0f} ms"
        self.vae_title.setText(self._title)
        self.vae_title.setStyleSheet("")
        self.status.setText(f"seed {seed}, temperature {temp:.2f}" +
                            (", same noise in every row" if same and conditional else "") +
                            (", z from the prior" if density is None else
                             ", z from the selection's region" if density.origin else ", z from the fitted density"))
        self.selected = None
        self.large.set_image(None)
        self.send_btn.setEnabled(False)
        if self.compare.isChecked():
            self._start_diffusion()

    def _on_grid_done(self, _stopped: bool) -> None:
        if self._resample:
            self.regenerate(new_seed=False)

    def select(self, index: int) -> None:
        if self.images is None or not 0 <= index < len(self.images):
            return
        self.selected = index
        self.grid.set_highlight(index)
        row = index // self.columns.value()
        label = self.rows[row] if row < len(self.rows) else 0
        names = self.state.vae.meta.class_names
        caption = names[label] if self.state.vae_model.num_classes else f"sample {index}"
        self.large.set_image(self.images[index], caption)
        self.send_btn.setEnabled(True)

    def _send(self) -> None:
        if self.selected is None or self._z is None:
            return
        row = self.selected // self.columns.value()
        end = Endpoint(self._z[self.selected].copy(), int(self.rows[row]), self.state.vae_model)
        self.state.hand_off(InterpolationEndpoints((end,), "a sample of the Sampler"))

    # ---- diffusion comparison ---------------------------------------------------------------------------------------
    def _on_compare(self, on: bool) -> None:
        self.diff_box.setVisible(on)
        if on:
            self._start_diffusion()
        else:
            self._cancel_diffusion()

    def _start_diffusion(self) -> None:
        diff = self.state.diffusion
        if diff is None or not self.rows:
            return
        n_classes = diff.model.num_classes
        rows = [c for c in self.rows if c < n_classes] if n_classes else [0]
        n = self.columns.value()
        key = (diff.model, tuple(rows), n, self.seed.value())
        if key == self._diff_key:
            return                                # temperature and same-noise do not change the diffusion grid
        self._cancel_diffusion()
        self._diff_key = key
        self.diffusion_runs += 1
        self.diff_title.setText("diffusion: sampling…")
        self.diff_cancel.setEnabled(True)
        start = time.perf_counter()
        self.tasks.start("diffusion", diffusion_grid, diff.model, rows, n, seed=self.seed.value(),
                         on_result=lambda imgs: self._on_diff_done(imgs, rows, n, start), progress=self.diff_progress,
                         status=lambda text: self.diff_title.setText(f"diffusion {text}"),
                         on_failed=self._on_diff_failed, on_finished=lambda _: self.diff_cancel.setEnabled(False))

    def _on_diff_done(self, imgs, rows: list[int], n: int, start: float) -> None:
        if imgs is None:
            return
        secs = time.perf_counter() - start
        names = self.state.diffusion.meta.class_names
        self.diff_grid.set_images(imgs, columns=n, row_labels=[names[c] for c in rows] if names else None)
        self.diff_title.setText(f"diffusion: {len(imgs)} samples in {secs:.1f} s (VAE: {self.vae_ms:.0f} ms)")
        self.diff_cancel.setEnabled(False)

    def _on_diff_failed(self, _message: str, _details: str) -> None:
        self._diff_key = None                     # the same settings may be tried again

    def _cancel_diffusion(self) -> None:
        if self.tasks.cancel("diffusion"):        # still sampling: its result is dropped
            self.diff_title.setText("diffusion: cancelled")
        self._diff_key = None
        self.diff_cancel.setEnabled(False)

    def shutdown(self) -> None:
        self.tasks.shutdown()

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_png(self, path: str) -> None:
        """The VAE grid (with its row labels) as PNG."""
        self.grid.save_png(path)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export sample grid", "samples.png", "PNG (*.png)")
        if path:
            self.export_png(path)


def _same(a: tuple | None, b: tuple | None) -> bool:
    """The same (model, dataset, settings): the objects by identity, as a newer snapshot or a reloaded dataset is
    another object; the settings by value."""
    return (a is not None and b is not None and len(a) == len(b) and a[0] is b[0] and a[1] is b[1]
            and a[2:] == b[2:])


def _what(selection) -> str:
    """The selection in words, for titles: "the 134 images sent from the latent map (lasso)". Sent, not selected: the
    map's selection may be gone (another model shown there) while this region, a hand-off, stays."""
    return f"the {len(selection)} images sent from the {selection.source}" + \
        (f" ({selection.description})" if selection.description else "")
