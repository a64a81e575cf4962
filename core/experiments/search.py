"""A search for settings that score best on a dataset: an Optuna study (the `vae-explorer[search]` extra) over the VAE's
beta, latent size, width, learning rate and KL warm-up (and, when samples are judged, where their z come from: the
prior or a mixture fitted to the encoded data), starting from the dataset's preset.

`run_search(settings, out)` is an iterator of `SearchProgress` events ending with one `SearchEnded` (house rule: long
work never prints). Each trial is an ordinary run folder OUT/trial-NNNN trained here by the Trainer (its folder's one
writer); its first trial is the preset's own settings, so the search starts from the known good point. The objective
is the validation ELBO by default, or the IWAE NLL, the Fréchet score or the conditional accuracy of samples on the
validation split, or two of them (a Pareto front). A single objective prunes trials whose validation curve falls below
the median of earlier trials at the same epoch (Optuna's MedianPruner; the ELBO curve, or its negative as the IWAE
bound). The study lives in OUT/study.db (SQLite) or a database URL, so the same command continues it and several
machines can work on one. The time budget is kept: a trial still training when it runs out is stopped and marked
failed ("cut by the budget"), never counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Config, preset
from core.errors import UserError
from core.experiments.spec import _base_preset, _data_delta, apply_delta

TRIAL_PREFIX = "trial-"
STUDY_NAME = "vae-explorer-search"


@dataclass(frozen=True)
class Objective:
    name: str
    label: str
    direction: str                  # "maximize" or "minimize"
    key: str                        # the number's key in an evaluation (or "best_val": the training's best ELBO)


OBJECTIVES: dict[str, Objective] = {
    "elbo": Objective("elbo", "validation ELBO (nats per image, higher is better)", "maximize", "best_val"),
    "iwae": Objective("iwae", "validation IWAE NLL (nats per image, lower is better)", "minimize", "iwae_nll"),
    "frechet": Objective("frechet", "Fréchet score of samples (our classifier's features, lower is better)",
                         "minimize", "fid_like"),
    "accuracy": Objective("accuracy", "conditional accuracy of samples (higher is better)", "maximize",
                          "conditional_accuracy"),
}


@dataclass(frozen=True)
class Param:
    """One searched setting: a float range (log-uniform when `log`) or a list of choices."""

    key: str                        # "section.field" of the Config
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)


# The declared space. Its choices hold the digits preset's own values (latent 24, width 16, beta 0.3, lr 2e-3, no
# warm-up), so that the first trial can be the preset itself.
SPACE: tuple[Param, ...] = (
    Param("model.beta", 0.1, 2.0, log=True),
    Param("model.latent_dim", choices=(8, 16, 24, 32, 48)),
    Param("model.width", choices=(8, 16, 24, 32)),
    Param("train.lr", 3e-4, 6e-3, log=True),
    Param("model.kl_warmup_steps", choices=(0, 100, 300, 1000)),
)
# Where a trial's samples draw z from, searched when an objective judges samples (Fréchet, conditional accuracy): the
# prior N(0, I) or a per-class Gaussian mixture of the encoded training set (core/latent/samplers.py). Not a Config
# field: the trial's evaluation fits the sampler (a mixture: ~1 s on the digits). The diffusion prior is left out: its
# fit (tens of seconds) would cost more of a small budget than a trial.
SOURCE_KEY = "sample.from"
SOURCE_PARAM = Param(SOURCE_KEY, choices=("prior", "density"))
SAMPLE_OBJECTIVES = ("frechet", "accuracy")


@dataclass(frozen=True)
class SearchSettings:
    dataset: str = "digits"
    objectives: tuple[str, ...] = ("elbo",)
    budget_s: float = 600.0
    trials: int | None = None        # at most this many trials in this launch
    epochs: int | None = None        # per trial (default: the preset's)
    storage: str | None = None       # a database URL (default: sqlite:///OUT/study.db)
    seed: int = 0
    preset: str | None = None        # the preset the trials start from (default: the dataset's own; folders: digits)
    fixed: dict[str, Any] = field(default_factory=dict)   # further settings every trial gets ("section.field")
    space: tuple[Param, ...] = SPACE

    def __post_init__(self) -> None:
        object.__setattr__(self, "objectives", parse_objectives(",".join(self.objectives)))
        if not self.budget_s > 0:
            raise UserError(f"the search's budget must be above 0 seconds, not {self.budget_s}")
        judges_samples = any(o in SAMPLE_OBJECTIVES for o in self.objectives)
        if judges_samples and all(p.key != SOURCE_KEY for p in self.space):
            object.__setattr__(self, "space", (*self.space, SOURCE_PARAM))

    @property
    def pruned(self) -> bool:
        """Pruning needs one objective whose curve the training reports (the ELBO, or the IWAE's bound)."""
        return len(self.objectives) == 1 and self.objectives[0] in ("elbo", "iwae")


@dataclass(frozen=True)
class SearchProgress:
    trial: int
    stage: str        # "started", "training", "evaluating", "complete", "pruned", "failed"
    fraction: float   # of the time budget spent
    message: str = ""
    train_event: Any = None
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class SearchEnded:
    status: str       # "completed" (budget or trial count used up) or "stopped"
    message: str
    best: tuple[int, ...] = ()    # the best trial's number, or the Pareto front's


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not 1 <= len(names) <= 2 or len(set(names)) != len(names):
        raise UserError(f"objective {text!r}: give one or two different names of {', '.join(OBJECTIVES)}, separated "
                        "by a comma (e.g. elbo, or elbo,frechet for a Pareto front)")
    return names


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise UserError("search needs Optuna, which is not installed; install it with: pip install "
                        "'vae-explorer[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)     # no lines of its own: the events say what happens
    return optuna


def base_preset_name(settings: SearchSettings) -> str:
    """The preset the trials start from: `settings.preset`, else the dataset's own (UserError unless a VAE's)."""
    name = settings.preset or _base_preset(settings.dataset)
    if preset(name).model.kind != "vae":
        raise UserError(f"the search starts from a VAE preset; {name!r} is a {preset(name).model.kind} preset")
    return name


def base_config(settings: SearchSettings) -> Config:
    """The preset with the search's dataset and fixed settings: what every trial starts from."""
    base = base_preset_name(settings)
    fixed = {**_data_delta(settings.dataset, base), "train.preview_every": 0, **settings.fixed}
    if settings.epochs:
        fixed["train.epochs"] = settings.epochs
    return apply_delta(preset(base), fixed)


def open_study(settings: SearchSettings, out: Path) -> Any:
    """Create the study in its storage, or load it to continue (UserError when it was made for other objectives or
    another dataset, or when the folder holds another study's trials)."""
    optuna = import_optuna()
    storage = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    directions = [OBJECTIVES[n].direction for n in settings.objectives]
    epochs = base_config(settings).train.epochs
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 3))
              if settings.pruned else optuna.pruners.NopPruner())
    sampler = optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=8)
    try:
        study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=directions, sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as e:
        raise UserError(f"cannot open the study's storage {storage}: {str(e).splitlines()[0]}") from None
    made_for = {"objectives": list(settings.objectives), "dataset": settings.dataset,
                "preset": base_preset_name(settings)}
    if not study.trials and not study.user_attrs:
        if any(out.glob(f"{TRIAL_PREFIX}*")):
            raise UserError(f"{out} already holds trials of another study; choose another --out (or its --storage)")
        for key, value in made_for.items():
            study.set_user_attr(key, value)
    elif any(study.user_attrs.get(k, v if k == "preset" else None) != v for k, v in made_for.items()):
        # (a study made before the preset was recorded started from the dataset's own)
        raise UserError(f"the study in {storage} searches {', '.join(study.user_attrs.get('objectives', []))} on "
                        f"{study.user_attrs.get('dataset')} from the preset "
                        f"{study.user_attrs.get('preset', _base_preset(str(study.user_attrs.get('dataset'))))}; "
                        "choose another --out (or --storage) for this search")
    return study


def _close_abandoned(study: Any, out: Path) -> None:
    """Trials left RUNNING by a process that no longer runs (a kill): failed, so the sampler ignores them."""
    from core.experiments.launchers.schedule import writer_elsewhere

    state = import_optuna().trial.TrialState
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        run = out / t.user_attrs.get("run", f"{TRIAL_PREFIX}{t.number:04d}")
        if writer_elsewhere(run) is None:
            study.tell(t.number, state=state.FAIL)


def run_search(settings: SearchSettings, out: str | Path, *,
               should_stop: Callable[[], bool] | None = None) -> Iterator[SearchProgress | SearchEnded]:
    """Trials until the budget (or `settings.trials`) is used up; see the module docstring."""
    from core.experiments.trial import TrialRunner

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_config(settings)
    study = open_study(settings, out)
    _close_abandoned(study, out)
    stop = should_stop or (lambda: False)
    started = time.monotonic()
    deadline = started + settings.budget_s
    if not study.trials:     # the preset itself first: a search never ends worse than its starting point
        preset_values = {p.key: _flat_value(base, p.key) for p in settings.space}
        if all(not p.choices or preset_values[p.key] in p.choices for p in settings.space):
            study.enqueue_trial(preset_values, user_attrs={"preset": True})
    runner = TrialRunner(settings, out, base, study, stop=stop, deadline=deadline, started=started)
    n = 0
    while not stop() and time.monotonic() < deadline and (settings.trials is None or n < settings.trials):
        yield from runner.run_one()
        n += 1
    best = best_trial_numbers(study)
    if stop():
        yield SearchEnded("stopped", f"stopped after {n} trial(s) of this launch; run the search again to continue "
                                     "it", best)
    else:
        yield SearchEnded("completed", f"{n} trial(s) in {time.monotonic() - started:.0f} s; "
                                       f"{len(study.trials)} in the study", best)


def _flat_value(config: Config, key: str) -> Any:
    if key == SOURCE_KEY:
        return "prior"              # what the preset's samples use
    section, _, name = key.partition(".")
    return getattr(getattr(config, section), name)


def best_trial_numbers(study: Any) -> tuple[int, ...]:
    """The best complete trial's number (one objective) or the Pareto front's numbers (two); () when none is."""
    try:
        if len(study.directions) == 1:      # (best_trials would list every trial tied with the best)
            return (study.best_trial.number,)
        return tuple(t.number for t in study.best_trials)
    except (ValueError, RuntimeError):
        return ()
