"""Experiments as data: a named list of runs, each a delta of flattened settings ("section.field") on a base preset.

`reference_study(dataset, scale)` and `beta_sweep(dataset, scale)` build the two built-in experiments; `EXPERIMENTS`
names them for the CLI (and, later, the GUI). Scale "full" keeps the presets' own training settings (the study's
cifar10-seed2 VAE trains 200 epochs); "quick" shrinks models and epochs so that a whole experiment on digits finishes
in a few CPU minutes. A delta may set "model.kind" to switch the model (its settings then start from that kind's
defaults, or from the given preset's model of that kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import MODEL_CONFIGS, PRESETS, Config, preset, with_overrides
from core.errors import UserError
from core.latent.samplers import SAMPLERS

SCALES = ("quick", "full")
FIGURES = ("rate_distortion", "study_table", "ssim_explained")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")   # a run's name is its folder's name


@dataclass(frozen=True)
class RunSpec:
    name: str
    delta: dict[str, Any] = field(default_factory=dict)   # "section.field" -> value, applied on the base preset

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise UserError(f"run name {self.name!r} must be a folder name: letters, digits, '.', '_' or '-'")
        for key in self.delta:
            section, dot, name = str(key).partition(".")
            if not dot or section not in ("data", "model", "train") or not name:
                raise UserError(f"run {self.name}: setting {key!r} must be SECTION.FIELD with SECTION data, model "
                                "or train")


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    base_preset: str
    runs: tuple[RunSpec, ...]
    evaluate: bool = True
    figures: tuple[str, ...] = ()
    scale: str = "full"     # "quick": smaller evaluations too (see core.experiments.runner.eval_settings)
    # Where the evaluated samples' z come from (core/latent/samplers.py's names): the prior first (the tables' main
    # columns), then e.g. "density", "diffusion-prior", each fitted to a VAE run's model (a VAE's runs only).
    sources: tuple[str, ...] = ("prior",)
    prior_train_steps: int = 0   # the diffusion prior's optimiser steps (with "diffusion-prior"); 0: its default

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(self.runs))
        object.__setattr__(self, "figures", tuple(self.figures))
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.sources or self.sources[0] != "prior" or any(s not in SAMPLERS for s in self.sources):
            raise UserError(f"experiment {self.name}: sources of z {', '.join(self.sources) or '(none)'}: the prior "
                            f"first, then any of {', '.join(SAMPLERS)}")
        if self.prior_train_steps and "diffusion-prior" not in self.sources:
            raise UserError("--prior-train-steps sets the diffusion prior's fit: add --from diffusion-prior")
        if not 0 <= int(self.prior_train_steps) <= 1_000_000:
            raise UserError(f"the diffusion prior's train steps must be 1..1000000, not {self.prior_train_steps}")
        if self.base_preset not in PRESETS:
            raise UserError(f"experiment {self.name}: unknown base preset {self.base_preset!r}; choose one of: "
                            f"{', '.join(PRESETS)}")
        _check_scale(self.scale)
        if not self.runs:
            raise UserError(f"experiment {self.name} has no runs")
        names = [r.name for r in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UserError(f"experiment {self.name}: run names must be unique; repeated: {', '.join(dupes)}")
        unknown = [f for f in self.figures if f not in FIGURES]
        if unknown:
            raise UserError(f"experiment {self.name}: unknown figure(s) {', '.join(unknown)}; known: "
                            f"{', '.join(FIGURES)}")

    def config(self, run: RunSpec) -> Config:
        """The run's full configuration: the base preset with the run's delta applied."""
        try:
            return apply_delta(preset(self.base_preset), run.delta)
        except UserError as e:
            raise UserError(f"experiment {self.name}, run {run.name}: {e}") from None

    def configs(self) -> dict[str, Config]:
        """Every run's configuration by run name (raises UserError on the first bad delta)."""
        return {run.name: self.config(run) for run in self.runs}

    def check_data(self) -> None:
        """UserError, before any run starts, when a run's dataset is unknown or its image folder (folder:PATH) is not
        there: said once instead of every run failing on it in turn."""
        from core.data.datasets import LOADERS, known_datasets

        for name in dict.fromkeys(c.data.name.strip() for c in self.configs().values()):
            if name.lower().startswith("folder:"):
                root = Path(name[len("folder:"):].strip()).expanduser()
                if not name[len("folder:"):].strip() or not root.is_dir():
                    raise UserError(f"experiment {self.name}: the image folder {root} does not exist; give "
                                    "folder:PATH with one subfolder per class")
            elif name.lower().replace("_", "-") not in LOADERS:
                raise UserError(f"experiment {self.name}: unknown dataset {name!r}; known datasets: "
                                f"{', '.join(known_datasets())}")


def apply_delta(base: Config, delta: dict[str, Any]) -> Config:
    """`base` with the flattened settings of `delta`; "model.kind" first switches the model kind (defaults)."""
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for key, value in delta.items():
        section, _, name = key.partition(".")
        sections[section][name] = value
    model = base.model
    kind = sections["model"].pop("kind", None)
    if kind is not None and kind != model.kind:
        if kind not in MODEL_CONFIGS:
            raise UserError(f"unknown model kind {kind!r}; choose one of: {', '.join(MODEL_CONFIGS)}")
        model = MODEL_CONFIGS[kind]()
    return Config(data=with_overrides(base.data, **sections["data"]), model=with_overrides(model, **sections["model"]),
                  train=with_overrides(base.train, **sections["train"]))


def _flat(config: Config, sections: tuple[str, ...]) -> dict[str, Any]:
    d = config.to_dict()
    return {f"{s}.{k}": (tuple(v) if isinstance(v, list) else v) for s in sections for k, v in d[s].items()}


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")


def _base_preset(dataset: str) -> str:
    """The dataset's own preset (digits, mnist, fashion-mnist, cifar10); folder datasets start from digits."""
    name = dataset.strip().lower().replace("_", "-")
    return name if name in PRESETS and PRESETS[name].model.kind == "vae" else "digits"


def _data_delta(dataset: str, base: str) -> dict[str, Any]:
    return {} if PRESETS[base].data.name == dataset.strip().lower().replace("_", "-") else {"data.name": dataset}


# Quick scale: small widths and few steps (a whole experiment on digits in a few CPU minutes).
_QUICK_VAE = {"model.width": 8, "model.latent_dim": 16, "model.stages": 2, "train.ema_decay": 0.0,
              "train.early_stopping": 0, "train.preview_every": 100_000}   # a sample grid at the end only


def _quick_vae(base: str) -> dict[str, Any]:
    """The quick VAE delta for the preset `base`: its hierarchy shrinks with its stages (the mnist preset's three
    stochastic layers need three stages; two are left, so are two layers)."""
    layers = min(preset(base).model.stochastic_layers, _QUICK_VAE["model.stages"])
    return {**_QUICK_VAE, "model.stochastic_layers": layers}
_QUICK_DIFFUSION = {"model.base_channels": 8, "model.levels": 2, "model.sample_steps": 10, "train.ema_decay": 0.0,
                    "train.early_stopping": 0, "train.preview_every": 100_000}


def beta_sweep(dataset: str = "digits", scale: str = "quick",
               betas: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 4.0)) -> ExperimentSpec:
    """beta over a log grid, everything else fixed: the rate-distortion trade-off of the dataset's own VAE."""
    _check_scale(scale)
    if not betas:
        raise UserError("a beta sweep needs at least one beta")
    base = _base_preset(dataset)
    common = dict(_data_delta(dataset, base))
    if scale == "quick":
        common.update(_quick_vae(base), **{"train.epochs": 6, "model.kl_warmup_steps": 0})
    runs = tuple(RunSpec(f"beta-{b:g}", {**common, "model.beta": float(b)}) for b in betas)
    return ExperimentSpec("beta-sweep", f"beta-VAE sweep on {dataset} ({scale}): beta in "
                          f"{', '.join(f'{b:g}' for b in betas)}, every other setting fixed; rate (KL) against "
                          "distortion (reconstruction), in nats per image", base, runs, True,
                          ("rate_distortion",), scale)


def _study_classes(dataset: str) -> tuple[str, str]:
    """The study's two single classes on CIFAR-10; on another dataset its first two classes (by index)."""
    return ("airplane", "frog") if dataset.strip().lower() == "cifar10" else ("0", "1")


def reference_study(dataset: str = "digits", scale: str = "quick") -> ExperimentSpec:
    """The reference student study's design (../shared/reference/cvae-cifar10-student-study.txt) on `dataset`:
    single classes, 1 and 100 images per class and all images; the study's VAE settings (cifar10-seed2) and ours
    (the dataset's preset); a DDPM on all images."""
    _check_scale(scale)
    base = _base_preset(dataset)
    data = _data_delta(dataset, base)
    study = _flat(preset("cifar10-seed2"), ("model", "train"))           # the study's VAE and training recipe
    if base == "cifar10":
        study["data.flip"] = False                                      # the study did not flip its images
    ours: dict[str, Any] = {}
    ddpm = _flat(preset("digits-diffusion"), ("model", "train"))      # includes model.kind = diffusion
    if base == "cifar10":
        ddpm.update({"train.epochs": 200, "train.batch_size": 128})      # the study's DDPM: 200 epochs
    if scale == "quick":
        # The study's recipe stays (batch 46, lr 1e-3, no residuals, BCE); only size and length shrink.
        study.update(_quick_vae("cifar10-seed2"), **{"train.epochs": 5})
        ours.update(_quick_vae(base), **{"train.epochs": 5})
        ddpm.update(_QUICK_DIFFUSION, **{"train.epochs": 8})
    a, b = _study_classes(dataset)
    subsets: list[tuple[str, dict[str, Any], int]] = [   # (name, data delta, epochs multiplier for tiny subsets)
        (f"class-{_slug(a)}", {"data.classes": (a,)}, 1),
        (f"class-{_slug(b)}", {"data.classes": (b,)}, 1),
        ("1-per-class", {"data.per_class": 1}, 20),
        ("100-per-class", {"data.per_class": 100}, 2),
        ("all", {}, 1),
    ]
    runs = []
    for subset, delta, longer in subsets:
        for tag, recipe in (("vae-study", study), ("vae-ours", ours)):
            run = {**data, **recipe, **delta}
            if scale == "quick" and longer > 1:   # a handful of images: more epochs for the same few steps
                run["train.epochs"] = int(run["train.epochs"]) * longer
            runs.append(RunSpec(f"{subset}-{tag}", run))
    runs.append(RunSpec("all-ddpm", {**data, **ddpm}))
    return ExperimentSpec("reference-study", f"the reference student study's design on {dataset} ({scale}): single "
                          "classes, 1 and 100 images per class and all images; the study's VAE (cifar10-seed2 "
                          "settings) and ours; a DDPM", base, tuple(runs), True, ("study_table", "ssim_explained"),
                          scale)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "class"


EXPERIMENTS: dict[str, Callable[[str, str], ExperimentSpec]] = {"reference-study": reference_study,
                                                                 "beta-sweep": beta_sweep}


def experiment(name: str, dataset: str = "digits", scale: str = "quick") -> ExperimentSpec:
    """The built-in experiment `name` on `dataset` at `scale` (UserError naming the known ones)."""
    try:
        build = EXPERIMENTS[name]
    except KeyError:
        raise UserError(f"unknown experiment {name!r}; choose one of: {', '.join(EXPERIMENTS)}") from None
    return build(dataset, scale)
