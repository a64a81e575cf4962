"""One trial of a settings search (core.experiments.search): ask the study for settings, train them into an ordinary
run folder as its one writer, report the validation curve for pruning, score the trial and tell the study."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.config import Config
from core.errors import UserError
from core.experiments.search import OBJECTIVES, SOURCE_KEY, TRIAL_PREFIX, SearchProgress, SearchSettings
from core.experiments.spec import apply_delta
from core.files import atomic_write_text

SEARCH_EVAL = "search-eval.json"      # in a trial's run folder: its scores on the validation split


class TrialRunner:
    def __init__(self, settings: SearchSettings, out: Path, base: Config, study: Any, *, stop: Callable[[], bool],
                 deadline: float, started: float) -> None:
        from core.experiments.search import import_optuna

        self.settings, self.out, self.base, self.study = settings, out, base, study
        self.stop, self.deadline, self.started = stop, deadline, started
        self.state = import_optuna().trial.TrialState

    def _fraction(self) -> float:
        return min(1.0, (time.monotonic() - self.started) / max(1e-9, self.deadline - self.started))

    def run_one(self) -> Iterator[SearchProgress]:
        trial = self.study.ask()
        params = {p.key: p.suggest(trial) for p in self.settings.space}
        name = f"{TRIAL_PREFIX}{trial.number:04d}"
        trial.set_user_attr("run", name)
        source = params.get(SOURCE_KEY, "prior")
        config = apply_delta(self.base, {k: v for k, v in params.items() if k != SOURCE_KEY})
        shown = ", ".join(f"{k.split('.')[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[1]}={v}"
                          for k, v in params.items())
        yield SearchProgress(trial.number, "started", self._fraction(), f"trial {trial.number}: {shown}")
        ended = None
        for item in self._train(trial, config, self.out / name):
            if isinstance(item, SearchProgress):
                yield item
            else:
                ended = item
        status, why = ended if ended is not None else ("failed", "ended without a result")
        if status == "pruned":
            self.study.tell(trial, state=self.state.PRUNED)
            yield SearchProgress(trial.number, "pruned", self._fraction(), f"trial {trial.number}: pruned ({why})")
            return
        if status not in ("completed", "early_stopped"):
            trial.set_user_attr("why", why)
            self.study.tell(trial, state=self.state.FAIL)
            yield SearchProgress(trial.number, "failed", self._fraction(), f"trial {trial.number}: {why}")
            return
        values = yield from self._score(trial, self.out / name, why, source)
        if values is None:
            self.study.tell(trial, state=self.state.FAIL)
            return
        self.study.tell(trial, list(values))
        text = ", ".join(f"{n} {v:.4g}" for n, v in zip(self.settings.objectives, values, strict=True))
        yield SearchProgress(trial.number, "complete", self._fraction(), f"trial {trial.number}: {text}",
                             values=values)

    def _train(self, trial: Any, config: Config, run_dir: Path) -> Iterator[SearchProgress | tuple[str, str]]:
        from core.training.events import EpochSummary, RunEnded
        from core.training.run_folder import acquire_run_folder
        from core.training.trainer import Trainer

        try:
            lock = acquire_run_folder(run_dir, command=f"vae-explorer search, trial {trial.number}")
        except UserError as e:
            yield ("failed", str(e))
            return
        try:
            trainer = Trainer(config, run_dir=run_dir)
            cut = pruned = None
            for ev in trainer.run():
                if cut is None and (self.stop() or time.monotonic() > self.deadline):
                    cut = "stopped" if self.stop() else "cut by the budget"
                    trainer.stop()
                if isinstance(ev, EpochSummary) and self.settings.pruned and ev.val.get("elbo") is not None:
                    elbo = float(ev.val["elbo"])
                    trial.report(elbo if self.settings.objectives[0] == "elbo" else -elbo, ev.epoch)
                    if pruned is None and trial.should_prune():
                        pruned = f"validation ELBO {elbo:.4g} at epoch {ev.epoch} is below the median"
                        trainer.stop()
                if isinstance(ev, RunEnded):
                    trial.set_user_attr("best_val", ev.best_val)
                    trial.set_user_attr("status", ev.status)
                    if pruned:
                        yield ("pruned", pruned)
                    elif ev.status in ("completed", "early_stopped"):
                        yield (ev.status, "" if ev.best_val is None else str(ev.best_val))
                    else:
                        yield ("failed", cut or ev.reason)
                yield SearchProgress(trial.number, "training", self._fraction(), "", ev)
        finally:
            lock.release()

    def _score(self, trial: Any, run_dir: Path, best_val: str, source: str = "prior") -> Iterator[SearchProgress]:
        """The trial's objective values (None when it could not be scored); evaluation on the validation split
        when an objective needs more than the training's own ELBO."""
        need = [OBJECTIVES[n] for n in self.settings.objectives]
        result: dict[str, Any] = {"best_val": float(best_val) if best_val else math.nan}
        if any(o.key != "best_val" for o in need):
            yield SearchProgress(trial.number, "evaluating", self._fraction(), f"trial {trial.number}: evaluating")
            try:
                scores = evaluate_trial(run_dir, iwae=any(o.name == "iwae" for o in need), should_stop=self.stop,
                                        source=source)
            except UserError as e:
                trial.set_user_attr("why", str(e))
                yield SearchProgress(trial.number, "failed", self._fraction(), f"trial {trial.number}: {e}")
                return None
            if scores is None:
                trial.set_user_attr("why", "stopped while evaluating")
                return None
            result.update(scores)
        values = tuple(float(result.get(o.key, math.nan)) for o in need)
        if not all(math.isfinite(v) for v in values):
            trial.set_user_attr("why", "no finite score")
            yield SearchProgress(trial.number, "failed", self._fraction(), f"trial {trial.number}: no finite score")
            return None
        for o, v in zip(need, values, strict=True):
            trial.set_user_attr(o.name, v)
        return values


def evaluate_trial(run_dir: Path, *, iwae: bool, should_stop: Callable[[], bool],
                   source: str = "prior") -> dict[str, Any] | None:
    """Scores of the trial's best checkpoint on the validation split (the test split stays for the final judgement),
    its samples' z drawn by `source` (a name in core/latent/samplers.py, fitted to the trial's model here); kept in
    RUN/search-eval.json (`samples_from` names the source)."""
    from core.data.datasets import load_dataset
    from core.evaluation.evaluate import evaluate
    from core.latent.samplers import make_sampler
    from core.training.checkpoint import load_model

    loaded = load_model(run_dir / "checkpoints" / "best.safetensors")
    dataset = load_dataset(loaded.config.data)
    sampler = None
    if source != "prior":
        sampler = make_sampler(source).fit(loaded, dataset, should_stop=should_stop)
        if sampler is None:
            return None
    result = evaluate(loaded, dataset, "val", should_stop=should_stop, iwae_k=16 if iwae else 0, n_per_class=20,
                      fid="judge", latent_samplers={source: None if sampler is None else sampler.sample})
    if result is not None:
        atomic_write_text(run_dir / SEARCH_EVAL, json.dumps(result, indent=2))
    return result
