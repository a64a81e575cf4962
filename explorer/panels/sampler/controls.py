"""The Sampler's controls: what to sample (columns, source of z and its settings, temperature, seed) on a toolbar
that wraps on a narrow window, then which classes and how to show them.

The sources are core/latent/samplers.py's registry (the CLI's `--from` names: prior, density, diffusion-prior, in its
order), then the latent map's region (`--near` on the CLI), enabled once a selection was sent here. The view only
says what the user chose (`settings()`); the panel samples it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QFlowLayout, QLabeledDoubleSlider
from superqt.utils import signals_blocked

from core.latent.density import DEFAULT_COMPONENTS
from core.latent.diffusion_prior import DiffusionPriorSettings
from core.latent.samplers import SAMPLERS

# How the registry's sources read in the source box (a source the GUI does not know yet shows its summary).
SOURCE_LABELS = {"prior": "prior N(0, I)", "density": "fitted density (per-class GMM)",
                 "diffusion-prior": "diffusion prior (learned)"}
REGION_NAME = "region"
SOURCE_NAMES: tuple[str, ...] = (*SAMPLERS, REGION_NAME)
SOURCES = tuple(SOURCE_LABELS.get(name, SAMPLERS[name].summary) for name in SAMPLERS) + \
    ("region of the map's selection",)
PRIOR, DENSITY, DIFFUSION_PRIOR, REGION = (SOURCE_NAMES.index(n) for n in ("prior", "density", "diffusion-prior",
                                                                          REGION_NAME))
FIT_DEFAULTS = DiffusionPriorSettings()


@dataclass(frozen=True)
class GridSettings:
    """One grid's settings as shown: rows (class labels; [0] for an unconditional VAE), columns, noise."""

    rows: tuple[int, ...]
    n: int
    temperature: float
    seed: int
    same_noise: bool
    source: str                                  # a SOURCE_NAMES entry
    source_settings: dict[str, Any] = field(default_factory=dict)


def _spin(low: int, high: int, value: int, *, prefix: str = "", suffix: str = "", tip: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setPrefix(prefix)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


class SamplerControls(QWidget):
    changed = Signal()               # a setting changed: sample again with the same seed
    regenerateClicked = Signal()     # new noise (the next seed)
    exportClicked = Signal()
    compareToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = _spin(1, 32, 10, prefix="N = ")
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        for i, name in enumerate(SOURCE_NAMES[:-1]):
            self.source.setItemData(i, SAMPLERS[name].summary, Qt.ItemDataRole.ToolTipRole)
        self.source.model().item(REGION).setEnabled(False)   # until a selection is sent here from the latent map
        self.source.setToolTip("where z comes from: the prior, a Gaussian mixture per class or a diffusion model "
                               "fitted to the posterior means of the training images (fitted once per model, on the "
                               "first use), or a mixture fitted to the images selected in the latent map (Send to → "
                               "Sampler there)")
        self.components = _spin(1, 64, DEFAULT_COMPONENTS, suffix=" Gaussians per class",
                                tip="Gaussian components per class in the fitted density (more: closer to the "
                                    "training images' own latents)")
        self.covariance = QComboBox()
        self.covariance.addItems(["full covariance", "diagonal covariance"])
        self.covariance.setToolTip("each component's covariance: full keeps the correlations between latent units")
        self.fit_steps = _spin(10, 100_000, FIT_DEFAULTS.train_steps, suffix=" fit steps",
                               tip="optimiser steps of the diffusion prior's fit (refitted when changed)")
        self.fit_steps.setSingleStep(100)
        self.solver_steps = _spin(1, 200, FIT_DEFAULTS.sample_steps, suffix=" solver steps",
                                  tip="DPM-Solver++ steps per sample (the fit is kept)")
        self.match_spread = QCheckBox("match the data's spread")
        self.match_spread.setToolTip("scale each class's draws about their mean to the spread of the training "
                                     "images' latents of that class (more varied samples; the fit is kept)")
        self.fit_progress = QProgressBar()
        self.fit_progress.setMaximumWidth(190)
        self.fit_progress.setVisible(False)
        self.temperature = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setDecimals(2)
        self.temperature.setSingleStep(0.01)
        self.temperature.setValue(1.0)
        self.temperature.setMinimumWidth(170)
        self.temperature.setToolTip("scale of the noise: the prior's standard deviation, or the spread of each "
                                    "component of the fitted density around its mean")
        self.seed = _spin(0, 2 ** 31 - 1, 0, prefix="seed ")
        self.seed.setMaximumWidth(130)
        self.regen_btn = QPushButton("Regenerate")
        self.regen_btn.setToolTip("new noise (next seed)")
        self.class_list = QListWidget()
        self.class_list.setFlow(QListWidget.Flow.LeftToRight)
        self.class_list.setWrapping(True)
        self.class_list.setMaximumHeight(30)
        self.class_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.same_noise = QCheckBox("same noise across rows")
        self.compare = QCheckBox("compare with diffusion")
        self.export_btn = QPushButton("Export PNG…")
        self._lay_out()
        self._connect()
        self.show_source_settings()

    def _lay_out(self) -> None:
        # two rows, so the panel fits a laptop screen beside the models list: what to sample (wrapping when narrow),
        # then which classes and how to show them
        top = QWidget()
        flow = QFlowLayout(top)
        flow.setContentsMargins(0, 0, 0, 0)
        for w in (self.columns, self.source, self.components, self.covariance, self.fit_steps, self.solver_steps,
                  self.match_spread, self.fit_progress, QLabel("temperature"), self.temperature, self.seed,
                  self.regen_btn):
            flow.addWidget(w)
        second = QHBoxLayout()
        second.addWidget(self.class_list, 1)
        for w in (self.same_noise, self.compare, self.export_btn):
            second.addWidget(w)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(top)
        lay.addLayout(second)

    def _connect(self) -> None:
        again = self.changed.emit
        self.class_list.itemChanged.connect(lambda _: again())
        for box in (self.columns, self.seed, self.components, self.fit_steps, self.solver_steps):
            box.valueChanged.connect(lambda _: again())
        self.temperature.valueChanged.connect(lambda _: again())
        self.covariance.currentIndexChanged.connect(lambda _: again())
        self.same_noise.toggled.connect(lambda _: again())
        self.match_spread.toggled.connect(lambda _: again())
        self.source.currentIndexChanged.connect(lambda _: self.show_source_settings())
        self.source.currentIndexChanged.connect(lambda _: again())
        self.regen_btn.clicked.connect(self.regenerateClicked.emit)
        self.export_btn.clicked.connect(self.exportClicked.emit)
        self.compare.toggled.connect(self.compareToggled.emit)

    # ---- what is chosen -----------------------------------------------------------------------------------------
    def source_name(self) -> str:
        return SOURCE_NAMES[self.source.currentIndex()]

    def source_settings(self) -> dict[str, Any]:
        """The chosen source's settings, as samplers.py's fields take them (the region has none here)."""
        name = self.source_name()
        if name == "density":
            return {"components": self.components.value(),
                    "covariance": "diag" if self.covariance.currentIndex() == 1 else "full"}
        if name == "diffusion-prior":
            return {"settings": DiffusionPriorSettings(train_steps=self.fit_steps.value(),
                                                       sample_steps=self.solver_steps.value(),
                                                       match_spread=self.match_spread.isChecked())}
        return {}

    def chosen_classes(self) -> list[int]:
        return [i for i in range(self.class_list.count())
                if self.class_list.item(i).checkState() == Qt.CheckState.Checked]

    def settings(self, conditional: bool) -> GridSettings:
        return GridSettings(tuple(self.chosen_classes()) if conditional else (0,), self.columns.value(),
                            round(self.temperature.value(), 2), self.seed.value(), self.same_noise.isChecked(),
                            self.source_name(), self.source_settings())

    # ---- setting them -------------------------------------------------------------------------------------------
    def show_source_settings(self) -> None:
        name = self.source_name()
        for w in (self.components, self.covariance):
            w.setVisible(name == "density")
        for w in (self.fit_steps, self.solver_steps, self.match_spread):
            w.setVisible(name == "diffusion-prior")

    def set_classes(self, names: list[str] | None) -> None:
        """One ticked box per class of a conditional VAE (`names`); none (hidden) for an unconditional one."""
        with signals_blocked(self.class_list):
            self.class_list.clear()
            for name in names or ():
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked)
                self.class_list.addItem(item)
        self.class_list.setVisible(bool(names))
        self.same_noise.setEnabled(bool(names))

    def use_region(self, classes: list[int]) -> None:
        """A selection's region was sent here: its classes ticked, the region source chosen (without sampling)."""
        with signals_blocked(self.class_list):
            for i in range(self.class_list.count()):
                ticked = Qt.CheckState.Checked if i in classes else Qt.CheckState.Unchecked
                self.class_list.item(i).setCheckState(ticked)
        self.source.model().item(REGION).setEnabled(True)
        with signals_blocked(self.source):
            self.source.setCurrentIndex(REGION)
        self.show_source_settings()

    def next_seed(self) -> None:
        with signals_blocked(self.seed):
            self.seed.setValue(self.seed.value() + 1)
