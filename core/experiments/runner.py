"""Run an experiment: each run trained into an ordinary run folder OUT/<run>, then evaluated (OUT/<run>/eval.json).

`run_experiment(spec, out_dir)` is an iterator of `ExperimentProgress` events ending with one `ExperimentEnded`
(house rule: long work never prints; the CLI and the GUI show the events). It is resumable: a run whose metrics.jsonl
already ends "completed" (or "early_stopped") is not trained again, an interrupted run continues from its
checkpoints/last.safetensors, and a run with an eval.json is not evaluated again. `should_stop()` stops the current run
after its current step (the Trainer saves its checkpoint) and ends the experiment as "stopped".

With a `launcher` (core.experiments.launchers: N local processes at once, Ray tasks, Slurm jobs) each run trains and
is evaluated in its own process, as many at once as the launcher takes; this process follows their metrics.jsonl
(core.experiments.launchers.schedule). The results are those of the serial runs with the same seeds.

With `torchrun=N` each run is trained by `torchrun --standalone --nproc_per_node N ... train` (DDP, one process per
GPU), one run after another; this process follows the run's metrics.jsonl for progress, and a stop sends the launcher
SIGINT (torchrun forwards it: every rank stops and rank 0 saves the interrupt checkpoint). Evaluation stays here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.experiments.launchers import Launcher
from core.experiments.launchers.job import launch_files
from core.experiments.spec import ExperimentSpec, RunSpec
from core.files import atomic_write_text

ShouldStop = Callable[[], bool]
FINISHED = ("completed", "early_stopped")
_TRAIN_SHARE = 0.85    # of one run's share of the overall fraction, when it is also evaluated
_SSIM_PAIRS = 100      # sample / test-image pairs for the SSIM "as the study describes"
EVAL_SAMPLES = "eval-samples.png"   # next to eval.json: samples of the evaluated weights


@dataclass(frozen=True)
class ExperimentProgress:
    run: str
    index: int           # 0-based index of the run
    total: int           # number of runs
    stage: str           # "training", "resuming", "skipped", "evaluating", "evaluated", "done", "failed"
    fraction: float      # 0..1 of the whole experiment
    message: str = ""
    train_event: Any = None   # the Trainer's own event while training (StepMetrics, EpochSummary, ...)


@dataclass(frozen=True)
class ExperimentEnded:
    status: str          # "completed", "stopped" or "failed" (some runs failed; the others are done)
    message: str
    failed: tuple[str, ...] = ()


def run_status(run_dir: Path) -> str | None:
    """The status of the run's last RunEnded record in metrics.jsonl ("completed", "stopped", ...), None if none."""
    log = run_dir / "metrics.jsonl"
    status = None
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue   # a line cut by a kill: the run did not end there
        if isinstance(record, dict) and record.get("type") == "end":
            status = str(record.get("status"))
    return status


class MetricsTail:
    """The events another process appends to a run's metrics.jsonl, from `offset` on: each `read()` returns the ones
    whose lines are complete (a half-written line waits; a line this reader cannot use is skipped, as the runs view
    does)."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self._buffer = ""

    def read(self) -> list[Any]:
        from core.training.events import from_record

        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                f.seek(self.offset)
                chunk = f.read()
                self.offset = f.tell()
        except OSError:      # not written yet
            return []
        *lines, self._buffer = (self._buffer + chunk).split("\n")
        events = []
        for line in lines:
            try:
                ev = from_record(json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue
            if ev is not None:
                events.append(ev)
        return events


def eval_settings(scale: str, kind: str) -> dict[str, int]:
    """Evaluation effort: quick experiments use few IWAE samples and generated images per class."""
    settings = {"iwae_k": 8, "n_per_class": 20} if scale == "quick" else {"iwae_k": 64, "n_per_class": 100}
    if kind != "vae":
        settings.pop("iwae_k")
        settings["n_per_class"] = min(settings["n_per_class"], 30)   # diffusion sampling is slow on the CPU
    return settings


def run_experiment(spec: ExperimentSpec, out_dir: str | Path, *,
                   progress: Callable[[ExperimentProgress], None] | None = None,
                   should_stop: ShouldStop | None = None,
                   torchrun: int = 0,
                   launcher: Launcher | None = None) -> Iterator[ExperimentProgress | ExperimentEnded]:
    """Train (and evaluate) every run of `spec` into `out_dir/<run>`; see the module docstring."""
    if torchrun < 0:
        raise UserError(f"torchrun needs a number of processes per node (1 or more), not {torchrun}")
    if torchrun and launcher is not None:
        raise UserError("--torchrun trains one run on several processes; it cannot be combined with a launcher")
    out = Path(out_dir)
    configs = spec.configs()          # every delta checked before any work
    out.mkdir(parents=True, exist_ok=True)
    stop = should_stop or (lambda: False)
    if launcher is None:
        yield from _run_here(spec, out, configs, progress, stop, torchrun)
        return
    from core.experiments.launchers.schedule import run_launched

    for ev in run_launched(spec, out, configs, launcher, stop=stop):
        if progress is not None and isinstance(ev, ExperimentProgress):
            progress(ev)
        yield ev


def _run_here(spec: ExperimentSpec, out: Path, configs: dict[str, Any],
              progress: Callable[[ExperimentProgress], None] | None, stop: ShouldStop,
              torchrun: int) -> Iterator[ExperimentProgress | ExperimentEnded]:
    """The runs one after another, each trained in this process (or under torchrun) and evaluated here."""
    n = len(spec.runs)
    failed: list[str] = []

    def emit(ev: ExperimentProgress) -> ExperimentProgress:
        if progress is not None:
            progress(ev)
        return ev

    for i, run in enumerate(spec.runs):
        run_dir = out / run.name
        config = configs[run.name]
        share = _TRAIN_SHARE if spec.evaluate else 1.0
        status = run_status(run_dir)
        if status in FINISHED:
            yield emit(ExperimentProgress(run.name, i, n, "skipped", (i + share) / n, f"{run.name}: already trained"))
        else:
            status = None
            train = _train_torchrun if torchrun else _train
            for ev in train(run, run_dir, config, i, n, share, stop, **({"nproc": torchrun} if torchrun else {})):
                if isinstance(ev, str):
                    status = ev
                else:
                    yield emit(ev)
            if status == "stopped":
                yield ExperimentEnded("stopped", f"stopped during {run.name}; run the experiment again to continue")
                return
            if status not in FINISHED:
                failed.append(run.name)
                if status != "busy":      # (a busy folder's holder was named already)
                    yield emit(ExperimentProgress(run.name, i, n, "failed", (i + 1) / n, f"{run.name}: training "
                                                  f"{status or 'ended without a result'}"))
                continue
        if spec.evaluate and not evaluated(run_dir, spec.sources):
            yield emit(ExperimentProgress(run.name, i, n, "evaluating", (i + share) / n, f"evaluating {run.name}"))
            try:
                result = evaluate_run(run_dir, scale=spec.scale, with_study_ssim="ssim_explained" in spec.figures,
                                      should_stop=stop, sources=spec.sources,
                                      prior_train_steps=spec.prior_train_steps)
            except UserError as e:
                failed.append(run.name)
                yield emit(ExperimentProgress(run.name, i, n, "failed", (i + 1) / n, f"{run.name}: {e}"))
                continue
            if result is None:
                yield ExperimentEnded("stopped", f"stopped while evaluating {run.name}; run the experiment again "
                                                 "to continue")
                return
            atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=2))
            yield emit(ExperimentProgress(run.name, i, n, "evaluated", (i + 1) / n, f"{run.name}: evaluated"))
        yield emit(ExperimentProgress(run.name, i, n, "done", (i + 1) / n, f"{run.name}: done"))
    if failed:
        yield ExperimentEnded("failed", f"{len(failed)} of {n} runs failed: {', '.join(failed)}", tuple(failed))
    else:
        yield ExperimentEnded("completed", f"{n} runs done")


def _train(run: RunSpec, run_dir: Path, config: Any, i: int, n: int, share: float,
           stop: ShouldStop) -> Iterator[ExperimentProgress | str]:
    """Train one run as its folder's one writer (resuming from its last checkpoint when there is one); its events,
    then its end status ("busy" when another process writes the folder)."""
    from core.training.events import RunEnded, StepMetrics
    from core.training.run_folder import RunFolderBusy, acquire_run_folder
    from core.training.trainer import Trainer

    try:
        lock = acquire_run_folder(run_dir, resume=True, command="vae-explorer experiment")
    except RunFolderBusy as e:
        yield ExperimentProgress(run.name, i, n, "failed", (i + 1) / n, f"{run.name}: {e}")
        yield "busy"
        return
    try:
        last = run_dir / "checkpoints" / "last.safetensors"
        resume = last if last.is_file() else None
        trainer = Trainer(config, run_dir=run_dir, resume=resume)
        stage = "resuming" if resume is not None else "training"
        yield ExperimentProgress(run.name, i, n, stage, i / n, f"{stage} {run.name} ({i + 1}/{n})")
        status = None
        done = 0.0     # of this run's training
        for ev in trainer.run():
            if stop():
                trainer.stop()
            if isinstance(ev, StepMetrics):
                done = ev.progress
            if isinstance(ev, RunEnded):
                status = ev.status
                done = 1.0 if ev.status in FINISHED else done
            yield ExperimentProgress(run.name, i, n, "training", (i + share * done) / n, "", ev)
    finally:
        lock.release()
    yield status or "failed"


def _train_torchrun(run: RunSpec, run_dir: Path, config: Any, i: int, n: int, share: float, stop: ShouldStop, *,
                    nproc: int, poll_s: float = 0.5) -> Iterator[ExperimentProgress | str]:
    """Train one run under torchrun (see the module docstring); its progress events, then its end status."""
    from core.training.events import RunEnded, StepMetrics

    config_file = launch_files(run_dir.parent, run.name)[0].with_suffix(".config.json")
    config_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_file, config.to_json())
    last = run_dir / "checkpoints" / "last.safetensors"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "core.cli", "train", "--config", str(config_file), "--out", str(run_dir), "--quiet"]
    if last.is_file():
        command += ["--resume", str(last)]
    metrics = run_dir / "metrics.jsonl"
    offset = metrics.stat().st_size if metrics.is_file() else 0   # only this launch's records count
    yield ExperimentProgress(run.name, i, n, "resuming" if last.is_file() else "training", i / n,
                             f"{'resuming' if last.is_file() else 'training'} {run.name} ({i + 1}/{n}) under "
                             f"torchrun with {nproc} processes")
    log = launch_files(run_dir.parent, run.name)[1]   # the launcher's and the ranks' own output, for a failed launch
    try:
        with open(log, "a", encoding="utf-8") as log_file:
            proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    except OSError as e:
        raise UserError(f"cannot start torchrun ({e.strerror or e})") from None
    status, done, interrupted = None, 0.0, False
    tail = MetricsTail(metrics, offset)
    while True:
        finished = proc.poll() is not None
        if stop() and not interrupted and not finished:
            proc.send_signal(signal.SIGINT)
            interrupted = True
        for ev in tail.read():
            if isinstance(ev, StepMetrics):
                done = ev.progress
            elif isinstance(ev, RunEnded):
                status = ev.status
                done = 1.0 if ev.status in FINISHED else done
            yield ExperimentProgress(run.name, i, n, "training", (i + share * done) / n, "", ev)
        if finished:
            break
        time.sleep(poll_s)
    if status is None:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        # Our CLI's one-line "vae-explorer: error: ..." says what went wrong; torchrun's own summary follows it.
        error = [line for line in lines if ": error:" in line] or [line for line in lines if line.strip("=- ")]
        yield ExperimentProgress(run.name, i, n, "failed", (i + 1) / n,
                                 f"{run.name}: torchrun exited with {proc.returncode}"
                                 + (f": {error[-1]}" if error else ""))
    yield status or "failed"


def evaluated(run_dir: Path, sources: tuple[str, ...] = ("prior",)) -> bool:
    """Whether the run's eval.json is there and holds every source of z asked for (a VAE's: "density_fid_like" ...);
    an evaluation without a source asked for later is done again, with all of them. (A source judged already counts
    whatever its fit's settings were: a different --prior-train-steps needs eval.json deleted.)"""
    from core.runs.evaluation import read_eval

    if not (run_dir / "eval.json").is_file():
        return False
    result = read_eval(run_dir, saved=False)
    if result is None:
        return True        # damaged: the report says so; a new evaluation is the user's choice (delete it)
    return result.get("model_kind") != "vae" or all(f"{name}_fid_like" in result or f"{name}_not_judged" in result
                                                     for name in sources[1:])


def evaluate_run(run_dir: Path, *, scale: str = "full", with_study_ssim: bool = False,
                 should_stop: ShouldStop | None = None, sources: tuple[str, ...] = ("prior",),
                 prior_train_steps: int = 0) -> dict[str, Any] | None:
    """Evaluate the run's best checkpoint (its last when there is no best) on the test split; None when stopped.
    A VAE's samples are also judged with z from each source after the prior (core/latent/samplers.py, fitted to the
    run's model and training split), the same way `vae-explorer eval --from` does ("density_fid_like" ...);
    `prior_train_steps` (not 0): the diffusion prior's optimiser steps."""
    from core.data.datasets import load_dataset
    from core.evaluation.evaluate import evaluate
    from core.latent.samplers import fit_sources, latent_samplers, source_notes
    from core.training.checkpoint import load_model

    checkpoint = run_dir / "checkpoints" / "best.safetensors"
    if not checkpoint.is_file():
        checkpoint = run_dir / "checkpoints" / "last.safetensors"
    if not checkpoint.is_file():
        raise UserError(f"{run_dir} has no checkpoint to evaluate")
    loaded = load_model(checkpoint)
    dataset = load_dataset(loaded.config.data)
    settings = eval_settings(scale, loaded.model.kind)
    sources = tuple(sources) if loaded.model.kind == "vae" else ("prior",)
    fit_settings: dict[str, dict[str, Any]] = {}
    if prior_train_steps and "diffusion-prior" in sources:
        from core.latent.diffusion_prior import DiffusionPriorSettings

        fit_settings["diffusion-prior"] = {"settings": DiffusionPriorSettings(train_steps=prior_train_steps)}
    fitted: dict[str, Any] = {}
    not_judged: dict[str, str] = {}   # a source that cannot be fitted to this run's model: said, the others judged
    for name in sources[1:]:
        try:
            one = fit_sources((name,), loaded, dataset, settings=fit_settings, should_stop=should_stop)
        except UserError as e:
            not_judged[f"{name}_not_judged"] = str(e)
            continue
        if one is None:
            return None
        fitted.update(one)
    sources = ("prior", *fitted)
    result = evaluate(loaded, dataset, "test", should_stop=should_stop, fid="judge" if scale == "quick" else "auto",
                      latent_samplers=latent_samplers(sources, fitted), **settings)
    if result is None:
        return None
    result.update(source_notes(fitted), **not_judged)
    if scale == "quick":
        result["fid_note"] = "no Inception FID: quick experiments skip it (minutes on a CPU); --scale full adds it"
    save_sample_grid(loaded.model, run_dir / EVAL_SAMPLES)
    if with_study_ssim and loaded.model.kind == "vae" and len(dataset.test):
        result.update(study_ssim(loaded, dataset))
    return result


def save_sample_grid(model: Any, path: Path, per_class: int = 8, seed: int = 0) -> None:
    """`per_class` samples of each class from the evaluated weights, one row per class, as a PNG (the same seed for
    every run, so that grids side by side differ only by their models)."""
    import torch

    from core.evaluation.evaluate import class_samples
    from core.images import image_grid, save_png, to_uint8

    samples = class_samples(model, max(model.num_classes, 1), per_class, torch.Generator().manual_seed(seed))
    assert samples is not None    # no should_stop given: it always finishes
    grid = image_grid(to_uint8(samples[0]), per_class, padding=1, pad_value=96)
    save_png(grid, str(path), scale=max(1, 64 // model.image_size))


def study_ssim(loaded: Any, dataset: Any, pairs: int = _SSIM_PAIRS, seed: int = 0) -> dict[str, float]:
    """SSIM of generated samples against test images of their class, computed as the study describes and correctly.

    The study compared generated images with test images and reported 0.99872 (planes) and 0.99969 (frogs). Such
    numbers come from SSIM's stabilising constants swamping the statistics: images in [0, 1] scored with the data
    range of 8-bit pixels (255) give C1 = (0.01*255)^2 = 6.5, which dwarfs every mean and variance of [0, 1] pixels,
    so any two images score ~1. Correctly (data range 1), unrelated pairs (a sample and some test image) score near 0;
    SSIM measures fidelity only between an image and its own reconstruction.
    """
    import torch
    from skimage.metrics import structural_similarity

    from core.evaluation.evaluate import class_samples
    from core.images import as_float

    test = dataset.test
    classes = max(dataset.meta.num_classes, 1)
    per_class = max(1, pairs // classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        got = class_samples(loaded.model, classes, per_class, gen)
    assert got is not None
    samples, labels = got
    images = as_float(test.images).cpu()
    test_labels = test.labels.cpu()
    rng = np.random.default_rng(seed)
    as_study, correct = [], []
    for x, y in zip(samples, labels, strict=True):
        candidates = torch.nonzero(test_labels == y).flatten().numpy()
        if len(candidates) == 0:
            continue
        t = images[int(rng.choice(candidates))]
        a, b = x.permute(1, 2, 0).numpy().astype(np.float64), t.permute(1, 2, 0).numpy().astype(np.float64)
        win = min(7, a.shape[0]) - (1 - min(7, a.shape[0]) % 2)
        as_study.append(structural_similarity(a, b, data_range=255.0, win_size=win, channel_axis=-1))
        correct.append(structural_similarity(a, b, data_range=1.0, win_size=win, channel_axis=-1))
    if not correct:
        return {}
    return {"ssim_samples_vs_test_as_study": float(np.mean(as_study)),
            "ssim_samples_vs_test_correct": float(np.mean(correct)), "ssim_pairs": len(correct)}
