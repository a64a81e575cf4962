"""The Experiments tab's settings: which experiment, on which dataset (a list), at which scale, into which folder, and
how many runs train at once (core.experiments.launchers.local: one process per run, one GPU each when there are GPUs,
else an equal share of the CPU cores)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.experiments.spec import ExperimentSpec
from explorer.panels.experiment_dataset import DatasetChoice
from explorer.widgets.elided_label import ElidedLabel


def most_at_once() -> tuple[int, str]:
    """How many runs may train at once here, and why: one per visible GPU, else one per CPU core."""
    from core.experiments.launchers.local import available_cpus, visible_gpus

    gpus = len(visible_gpus())
    if gpus:
        return gpus, f"{gpus} GPU{'s' if gpus > 1 else ''}: one run on each"
    cpus = available_cpus()
    return cpus, f"{cpus} CPU core{'s' if cpus > 1 else ''}, shared equally between the runs"


# The sources of z the form offers (core/latent/samplers.py's names; the prior always first).
SOURCE_CHOICES = (("the prior", ("prior",)), ("prior + class mixture", ("prior", "density")),
                  ("prior + mixture + diffusion prior", ("prior", "density", "diffusion-prior")))
# The diffusion prior's fit steps when `experiment --prior-train-steps` is not given: DiffusionPriorSettings.train_steps
# (core/latent/diffusion_prior.py imports torch, which the window does not load at start; a test holds them equal).
PRIOR_STEPS_DEFAULT = 2000


class ExperimentForm(QWidget):
    changed = Signal()       # the experiment, dataset, scale or folder changed: what Start would run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from core.experiments.spec import EXPERIMENTS

        self.name_box = QComboBox()
        self.name_box.addItems(list(EXPERIMENTS))
        self.dataset = DatasetChoice()
        self.scale_box = QComboBox()
        self.scale_box.addItems(["quick", "full"])
        self.scale_box.setToolTip("quick: small models and few epochs (minutes on a CPU); full: the presets' settings")
        self._build_sources()
        self.out = QLineEdit()
        self.out.setPlaceholderText("(a folder under the runs folder, named after the experiment)")
        choose = QPushButton("Choose...")
        choose.clicked.connect(self._ask_out)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(choose)
        most, why = most_at_once()
        self.parallel = QSpinBox()
        self.parallel.setRange(1, max(1, most))
        self.parallel.setValue(1)
        self.parallel.setToolTip(f"Runs trained at once, each in its own process (at most {most}: {why}). 1: one "
                                 "after another in this window's process.")
        form = QFormLayout()
        form.addRow("Experiment", self.name_box)
        form.addRow("Dataset", self.dataset)
        scale_row = QHBoxLayout()     # one row: the window fits 700 px tall
        scale_row.addWidget(self.scale_box)
        scale_row.addWidget(QLabel("Samples' z from"))
        scale_row.addWidget(self.sources_box, 1)
        scale_row.addWidget(self.prior_steps_label)
        scale_row.addWidget(self.prior_steps)
        form.addRow("Scale", scale_row)
        form.addRow("Output folder", out_row)
        self.parallel.setMaximumWidth(90)
        at_once = QHBoxLayout()
        at_once.addWidget(self.parallel)
        at_once.addWidget(QLabel(f"(at most {most}: {why})"), 1)
        form.addRow("Runs at once", at_once)
        self.description = ElidedLabel()      # one line (the whole text in its tooltip): the window fits 700 px tall
        for box in (self.name_box, self.dataset, self.scale_box, self.sources_box):
            box.currentTextChanged.connect(lambda _: self._describe())
            box.currentTextChanged.connect(lambda _: self.changed.emit())
        self.out.editingFinished.connect(self.changed.emit)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addWidget(self.description)
        self._describe()

    def _build_sources(self) -> None:
        """Where the judged samples' z come from (`experiment --from`) and the diffusion prior's fit steps
        (`--prior-train-steps`)."""
        self.sources_box = QComboBox()      # where the judged samples' z come from (`experiment --from`)
        for text, sources in SOURCE_CHOICES:
            self.sources_box.addItem(text, sources)
        self.sources_box.setToolTip("Judge each VAE run's samples with z from the prior only, or also from a "
                                    "Gaussian mixture per class and a diffusion prior fitted to its encoded training "
                                    "set (the report and the table get each one's numbers). The mixture fits in "
                                    "seconds; the diffusion prior takes about a minute per run.")
        self.prior_steps = QSpinBox()       # `experiment --prior-train-steps`: the diffusion prior's fit
        self.prior_steps.setRange(1, 1_000_000)
        self.prior_steps.setSingleStep(500)
        self.prior_steps.setValue(PRIOR_STEPS_DEFAULT)
        self.prior_steps.setToolTip(f"Diffusion prior: optimiser steps of its fit to each run's encoded training set "
                                    f"(--prior-train-steps; default {PRIOR_STEPS_DEFAULT}). Used when the samples' z "
                                    "come from the diffusion prior too.")
        self.prior_steps.setAccessibleName("Diffusion prior: fit steps")
        self.prior_steps_label = QLabel("Diffusion prior: fit steps")
        self.prior_steps_label.setBuddy(self.prior_steps)
        self.prior_steps.valueChanged.connect(lambda _: self.changed.emit())
        self.sources_box.currentIndexChanged.connect(lambda _: self._enable_prior_steps())
        self._enable_prior_steps()

    def _uses_diffusion_prior(self) -> bool:
        return "diffusion-prior" in (self.sources_box.currentData() or ())

    def _enable_prior_steps(self) -> None:
        for widget in (self.prior_steps, self.prior_steps_label):
            widget.setEnabled(self._uses_diffusion_prior())

    def _describe(self) -> None:
        try:
            spec = self.make_spec()
        except UserError as e:
            self.description.setText(str(e))
            return
        self.description.setText(f"{spec.description} ({len(spec.runs)} runs: "
                                 f"{', '.join(r.name for r in spec.runs)})")

    def make_spec(self) -> ExperimentSpec:
        import dataclasses

        from core.experiments.spec import experiment

        spec = experiment(self.name_box.currentText(), self.dataset.dataset(), self.scale_box.currentText())
        steps = self.prior_steps.value() if self._uses_diffusion_prior() else 0     # as --prior-train-steps N
        return dataclasses.replace(spec, sources=self.sources_box.currentData(), prior_train_steps=steps)

    def out_dir(self, spec: ExperimentSpec) -> Path:
        """The folder given, or one under the runs folder named after the experiment, dataset and scale."""
        if self.out.text().strip():
            return Path(self.out.text().strip()).expanduser()
        from core.paths import runs_dir

        slug = self.dataset.dataset().replace("folder:", "folder-").replace("/", "-")
        return runs_dir() / "experiments" / f"{spec.name}-{slug}-{self.scale_box.currentText()}"

    def _ask_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder for the experiment's runs")
        if folder:
            self.out.setText(folder)
            self.changed.emit()
