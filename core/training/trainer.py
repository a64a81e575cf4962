"""The Trainer: training as a plain iterator of events, with pause / resume / stop between steps.

`Trainer(config).run()` yields RunStarted, StepMetrics (every `log_every` steps), EpochSummary (with validation),
CheckpointSaved, Preview, ModelSnapshot (each epoch), LogMessage and, last, RunEnded. It never prints; the CLI shows a
progress bar and the GUI forwards the events as signals. It is generic over models: anything with `loss(x, y, *, step)
-> dict` (key "loss" is minimised) and `sample(labels, *, generator)` trains here. The model configures its own
optimisers and what its EMA averages (core/models/optimizers.py; a VAE-GAN's discriminator is an extra objective with
an optimiser of its own): the Trainer steps what it is given and has no branch on a model's kind.

The Trainer is the run's loop (setup, epochs, pause/stop, the events); its collaborators each hold one concern:
- `step.OptimisationStep`: one step (forward, backward, gradient norm, grad_skip, clipping, lr schedule, EMA);
- `resume.RunProgress` / `resume.RunCheckpoints`: where the run is, and saving / restoring its whole state;
- `validation`: the end of an epoch's validation metrics, best-checkpoint score and model snapshot;
- `records.RunRecord` / `MetricSums` / `Clock`: metrics.jsonl, and the step records' means, images/s and ETA.

Every step's gradient norm (the model optimiser's parameters, before clipping) is logged as `grad_norm`, the mean over
a step record's window (vdvae); with `grad_skip` > 0 a step whose norm exceeds it is skipped like a non-finite one
(nothing updated) and counted in `skipped_steps`; the run goes on unless `max_bad_steps` in a row are skipped.

Exact resume: batch order depends only on (seed, epoch); the checkpoint stores the position inside the epoch, the
global torch RNG states (the VAE's reparameterisation noise), the optimizers' states and the EMA weights. Validation and
previews run under their own fixed seeds and leave the training RNG untouched, so an interrupted and resumed run ends
with the same weights as an uninterrupted one (on the CPU; GPU kernels may not be bitwise deterministic).
"""

from __future__ import annotations

import contextlib
import errno
import math
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from core.config import Config, VAEConfig
from core.data.datasets import Dataset, load_dataset
from core.device import resolve_device
from core.errors import UserError
from core.models import build_model
from core.models.optimizers import Optimizers, configure_optimizers
from core.training import distributed, second_stage
from core.training.checkpoint import Checkpoint, load_checkpoint
from core.training.distributed import Group
from core.training.ema import EMA
from core.training.events import (
    CheckpointSaved,
    EpochSummary,
    Event,
    LogMessage,
    Preview,
    RunEnded,
    RunStarted,
)
from core.training.records import Clock, MetricSums, RunRecord
from core.training.resume import RunCheckpoints, RunProgress, base_learning_rates
from core.training.run_folder import make_preview, save_preview_png
from core.training.step import OptimisationStep, cosine_lr
from core.training.validation import epoch_score, model_snapshot, validate

__all__ = ["Trainer", "batch_order_generator", "compile_mode", "cosine_lr"]


def batch_order_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator that shuffles epoch `epoch` (1-based): a function of (seed, epoch) only, for exact resume."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def compile_mode(config: Config, device: torch.device, *, distributed: bool) -> str | None:
    """The torch.compile mode of the training step, None for eager. Only on CUDA. "auto" means CUDA graphs
    ("reduce-overhead", measured 1.66x on the cifar10 preset on an H200) where they are safe: one process (DDP's
    hooks), no discriminator (its adaptive weight takes gradients inside the loss) and no KL warm-up (the step number
    would change the graph each step)."""
    mode = config.train.compile
    if device.type != "cuda" or mode == "off":
        return None
    if mode != "auto":
        return mode
    m = config.model
    if distributed or (isinstance(m, VAEConfig) and (m.adversarial_weight > 0 or m.kl_warmup_steps > 0)):
        return None
    return "reduce-overhead"


def describe_device(device: torch.device, dist: Group | None) -> str:
    """The device as the run log names it ("cpu (2 threads)", "cuda:0 NVIDIA H100", a distributed run's ranks)."""
    if device.type == "cpu":
        desc = f"cpu ({torch.get_num_threads()} threads)"
    elif device.type == "cuda":
        desc = f"{device} {torch.cuda.get_device_name(device)}"
    else:
        desc = str(device)
    return dist.describe(desc) if dist is not None else desc


def training_loss(model: torch.nn.Module, config: Config, device: torch.device, dist: Group | None) -> Any:
    """The training step's loss: the model's, through DDP on a distributed run, compiled where that pays (the training
    step only; validation and previews stay eager)."""
    loss_fn = model.loss if dist is None else dist.wrap(model)
    mode = compile_mode(config, device, distributed=dist is not None)
    if mode is not None:
        if config.train.compile == "auto":   # a graph dynamo cannot take runs eagerly instead of failing the run
            torch._dynamo.config.suppress_errors = True
        loss_fn = torch.compile(loss_fn, mode=None if mode == "default" else mode)
    return loss_fn


def too_many_skips(why: str, bad_run: int, norm: float, grad_skip: float, *, at_step: int, kept: str) -> str:
    """Why a run that skipped `bad_run` steps in a row (`why`: "grad_skip" or "non-finite") failed, and what to do."""
    if why == "grad_skip":
        return (f"{bad_run} steps in a row had a gradient norm above train.grad_skip {grad_skip:g} (the last "
                f"{norm:.4g}) at step {at_step}; {kept}; raise train.grad_skip above the usual grad_norm of the step "
                "records, or set it to 0 (off)")
    return (f"{bad_run} non-finite steps in a row (the loss or gradient became NaN/inf) at step {at_step}; {kept}; "
            "try a lower learning rate, gradient clipping or a KL warm-up")


def setup_notes(ds: Dataset, warnings: list[str], stage: second_stage.SecondStage | None, ck: Checkpoint | None,
                step: int) -> list[tuple[str, str]]:
    """(level, message) of what the run log says as the run starts: a folder dataset's unreadable files (said in the
    run record, the GUI log and the terminal), `warnings`, the second-stage mode, where a resumed run resumed."""
    notes = []
    if ds.skipped:
        root = Path(ds.meta.name.removeprefix("folder:"))
        names = [str(Path(f).resolve().relative_to(root)) if Path(f).resolve().is_relative_to(root) else f
                 for f in ds.skipped[:5]]
        more = " ..." if len(ds.skipped) > 5 else ""
        notes.append(("warning", f"skipped {len(ds.skipped)} unreadable file(s) in {root}: {', '.join(names)}"
                                 f"{more}"))
    notes += [("warning", w) for w in warnings]
    if stage is not None:
        notes.append(("info", stage.describe(resumed=ck is not None)))
    if ck is not None:
        notes.append(("info", f"resumed from {ck.path} at step {step}"))
    return notes


class Trainer:
    """Trains `config` and reports progress as events; see the module docstring."""

    def __init__(self, config: Config, *, run_dir: str | Path | None = None, resume: str | Path | None = None,
                 dataset: Any = None, threads: int | None = None) -> None:
        self.config = config
        self.resume_path = Path(resume) if resume else None
        if self.resume_path is not None and not self.resume_path.is_file():
            raise UserError(f"cannot resume: no checkpoint file at {self.resume_path}")
        if run_dir is None and self.resume_path is not None and self.resume_path.parent.name == "checkpoints":
            run_dir = self.resume_path.parent.parent   # resuming continues in the checkpoint's own run folder
        self.dist = distributed.from_env()   # None unless torchrun started several processes
        self.run_dir = Path(run_dir) if run_dir and (self.dist is None or self.dist.is_main) else None
        self.dataset = dataset
        self.threads = config.train.threads if threads is None else threads
        self.device = resolve_device(config.train.device)
        if self.dist is not None:
            self.device = self.dist.pick_device(self.device)
        self._stop = threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self.record = RunRecord()
        self.progress = RunProgress()
        self.model: torch.nn.Module | None = None
        self.ema: EMA | None = None
        self.optimizers: Optimizers | None = None   # what the model configured (core/models/optimizers.py)
        self.second_stage: second_stage.SecondStage | None = None   # the mode of a run over a frozen first stage
        self.checkpoints: RunCheckpoints | None = None
        self.optimisation_step: OptimisationStep | None = None

    # ------------------------------------------------------------------------------------------- thread-safe control
    def pause(self) -> None:
        self._unpaused.clear()

    def resume(self) -> None:
        self._unpaused.set()

    def stop(self) -> None:
        """Ask the run to end after the current step (safe from another thread or a signal handler)."""
        self._stop.set()
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        return not self._unpaused.is_set()

    @property
    def last_checkpoint(self) -> str | None:
        """The path of the last "last" checkpoint this run saved (None before the first, or without a run folder)."""
        return self.checkpoints.last if self.checkpoints is not None else None

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------------------------------- the run
    def run(self) -> Iterator[Event]:
        prev_threads = torch.get_num_threads()
        together = False   # distributed: True when this rank ended the run at the same point as the others
        try:
            yield from self._run()
            together = True
        except Exception as e:  # noqa: BLE001 - the run's boundary: any failure ends the run as "failed" with its
            # reason (a bug keeps its traceback in the log), and the caller (GUI, CLI) stays alive
            reason = str(e) or type(e).__name__
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                e = UserError(f"the disk is full ({e.filename or self.run_dir}); free some space and resume from "
                              f"the last checkpoint{' (' + self.last_checkpoint + ')' if self.last_checkpoint else ''}")
                reason = str(e)
            if not isinstance(e, UserError):
                yield self._emit(LogMessage("error", f"training failed: {reason}\n{traceback.format_exc()}",
                                            self.progress.step))
            else:
                yield self._emit(LogMessage("error", reason, self.progress.step))
            yield self._ended("failed", reason)
        finally:
            torch.set_num_threads(prev_threads)
            if self.dist is not None:
                self.optimisation_step = None   # it holds the DDP wrapper, which goes before its process group
                self.dist.close(self.model, together=together)
            self.record.close()

    def _emit(self, event: Event) -> Event:
        """Record `event` in metrics.jsonl (when it is a recorded kind) and return it."""
        return self.record.write(event)

    def _ended(self, status: str, reason: str) -> Event:
        p = self.progress
        return self._emit(RunEnded(status, reason, p.step, p.epoch, p.best, self.last_checkpoint))

    def _setup(self) -> Iterator[Event]:
        if self.threads and self.threads > 0:
            torch.set_num_threads(int(self.threads))
        if self.dist is not None:
            self.dist.start(self.device)
        ck = load_checkpoint(self.resume_path) if self.resume_path else None
        warnings = []
        if ck is not None and (ck.config.model != self.config.model or ck.config.data != self.config.data):
            warnings.append("resuming with the checkpoint's own data and model settings; the given ones differ")
            self.config = Config(ck.config.data, ck.config.model, self.config.train)
        if self.dataset is None:
            with self.dist.main_first() if self.dist is not None else contextlib.nullcontext():  # one download
                self.dataset = load_dataset(self.config.data, self.device)
        ds = self.dataset
        self.train_split, self.val_split = ds.train.to(self.device), ds.val.to(self.device)
        if len(self.train_split) == 0:
            raise UserError("the training split is empty; choose more classes or images per class")
        tc = self.config.train
        torch.manual_seed(tc.seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(tc.seed)
        model = self._build_model_and_optimizers(ds.meta)
        if self.dist is not None:
            self.dist.seed_rng(tc.seed)
        base_lrs = base_learning_rates(self.optimizers)
        self.checkpoints = RunCheckpoints(self.run_dir, config=self.config, meta=ds.meta, device=self.device,
                                          dist=self.dist, model=model, ema=self.ema, optimizers=self.optimizers,
                                          base_lrs=base_lrs)
        if ck is not None:
            self.checkpoints.restore(ck, self.progress)
        loss_fn = training_loss(model, self.config, self.device, self.dist)
        if self.run_dir is not None:
            self.record.open(self.run_dir, self.config)
        steps_per_epoch = math.ceil(len(self.train_split) / tc.batch_size)
        self.total_steps = tc.epochs * steps_per_epoch
        if tc.max_steps:
            self.total_steps = min(self.total_steps, tc.max_steps)
        self.optimisation_step = OptimisationStep(
            model=model, loss_fn=loss_fn, optimizers=self.optimizers, ema=self.ema, train=tc,
            base_lrs=base_lrs, total_steps=self.total_steps, device=self.device, dist=self.dist)
        yield self._emit(RunStarted(str(self.run_dir) if self.run_dir else None, self.config.to_dict(),
                                    ds.meta.to_dict(), describe_device(self.device, self.dist), self.total_steps,
                                    steps_per_epoch, self.progress.step))
        notes = setup_notes(ds, warnings, self.second_stage, ck, self.progress.step)
        for level, message in notes:
            yield self._emit(LogMessage(level, message, self.progress.step))

    def _build_model_and_optimizers(self, meta: Any) -> torch.nn.Module:
        """The model on the device (channels-last on CUDA), the optimisers it configures and its EMA."""
        tc = self.config.train
        model = build_model(self.config.model, meta).to(self.device)
        self.second_stage = second_stage.of(model)
        if self.second_stage is not None and self.resume_path is None:   # resuming: its own checkpoint has both
            self.second_stage.begin(self.config)
        if self.device.type == "cuda" and tc.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizers = configure_optimizers(model, tc)
        if self.optimizers.extra and self.dist is not None:   # DDP wraps `loss` alone; extra objectives would not sync
            names = ", ".join(e.name for e in self.optimizers.extra)
            raise UserError(f"a model with an optimiser of its own for its {names} trains in one process; start it "
                            "without torchrun (a VAE-GAN: or set model.adversarial_weight=0)")
        self.ema = EMA(model, tc.ema_decay, averaged=self.optimizers.averaged) if tc.ema_decay > 0 else None
        return model

    def _run(self) -> Iterator[Event]:
        yield from self._setup()
        tc, p, optimisation_step = self.config.train, self.progress, self.optimisation_step
        sums = MetricSums()
        clock = Clock(p.step)
        bad_run = 0
        while p.epoch < tc.epochs and p.step < self.total_steps:
            epoch = p.epoch + 1
            self.model.train()
            batches = self.train_split.batches(tc.batch_size, shuffle=True, generator=batch_order_generator(tc.seed,
                                               epoch), flip=self.config.data.flip)
            for i, (xb, yb) in enumerate(batches):
                if i < p.pos:        # resuming inside this epoch: the same order, skip what was done
                    continue
                if not self._unpaused.is_set():
                    paused_at = time.perf_counter()
                    yield from self._wait_while_paused()
                    clock.paused_s += time.perf_counter() - paused_at
                    clock.restart_window(p.step)
                if self._stopping():
                    yield from self._save("interrupt")
                    yield self._ended("stopped", "stopped by the user")
                    return
                out, norm, skipped = optimisation_step(xb, yb, p.step, stop_requested=self._stop.is_set)
                if skipped is None:
                    bad_run = 0
                    sums.add(out, norm)
                else:   # skipped and counted; the run goes on unless it skips max_bad_steps in a row
                    bad_run += 1
                    if (yield from self._skipped_step(out["loss"], norm, skipped, bad_run, i)):
                        return
                p.step += 1
                p.pos = i + 1
                if p.step % tc.log_every == 0 and sums.window_n:
                    yield self._emit(clock.step_metrics(sums, step=p.step, epoch=epoch, total_steps=self.total_steps,
                                                        batch_size=tc.batch_size,
                                                        lr=optimisation_step.learning_rate,
                                                        skipped_steps=p.skipped_steps))
                if p.step >= self.total_steps:
                    break
            p.epoch, p.pos = epoch, 0
            if (yield from self._end_of_epoch(epoch, sums.take_epoch(), clock.elapsed())):
                return
        yield self._ended("completed", f"finished {p.epoch} epochs, {p.step} steps")

    def _wait_while_paused(self) -> Iterator[Event]:
        yield self._emit(LogMessage("info", "paused", self.progress.step))
        while not self._unpaused.wait(0.5):   # blocks; wakes on resume() or stop()
            pass
        if not self._stop.is_set():
            yield self._emit(LogMessage("info", "resumed", self.progress.step))

    def _skipped_step(self, loss: torch.Tensor, norm: torch.Tensor, why: str, bad_run: int, i: int
                      ) -> Iterator[Event]:
        """Report a skipped step (`why`: "non-finite", or "grad_skip" for a gradient spike); after `max_bad_steps`
        in a row, end the run as failed (returns True then): a threshold below the model's usual gradient norm
        would otherwise train nothing, silently."""
        p = self.progress
        p.skipped_steps += 1
        grad_skip = self.config.train.grad_skip
        if why == "grad_skip":
            what = f"gradient norm {float(norm):.4g} above train.grad_skip {grad_skip:g}"
        else:
            what = f"non-finite {'loss' if not torch.isfinite(loss) else 'gradient'}"
        yield self._emit(LogMessage("warning", f"{what} at step {p.step}: step skipped "
                                    f"({bad_run} in a row, {p.skipped_steps} in all)", p.step))
        if bad_run < self.config.train.max_bad_steps:
            return False
        p.step, p.pos = p.step + 1, i + 1
        # The skipped steps changed nothing: the weights in memory are the last good ones. Keep them.
        yield from self._save("last")
        kept = (f"the last good weights (step {p.step - bad_run}) are saved at {self.last_checkpoint}"
                if self.last_checkpoint else "no run folder, so nothing was saved")
        reason = too_many_skips(why, bad_run, float(norm), grad_skip, at_step=p.step - 1, kept=kept)
        yield self._emit(LogMessage("error", reason, p.step))
        yield self._ended("failed", reason)
        return True

    # ------------------------------------------------------------------------------------------- per epoch
    def _stopping(self) -> bool:
        """A distributed run stops only where all ranks agreed to (else one rank would wait for the others forever)."""
        return self._stop.is_set() if self.dist is None else self.optimisation_step.stop_agreed

    def _end_of_epoch(self, epoch: int, train_metrics: dict[str, float], elapsed: float):
        tc, p = self.config.train, self.progress
        model = self.eval_model
        model.eval()
        # Distributed: rank 0 validates on the whole split and sends the result, so the numbers are those a single
        # process reports for these weights, and all ranks take the same best / early-stopping decisions.
        val, kl_dims = (self._validate(model) if self.dist is None
                        else self.dist.from_main(lambda: self._validate(model)))
        is_best = p.judge_epoch(*epoch_score(val, train_metrics))
        yield self._emit(EpochSummary(epoch, p.step, train_metrics, val, is_best, elapsed, kl_dims))
        yield from self._save("last", val)
        if is_best:
            yield from self._save("best", val)
        last_epoch = epoch >= tc.epochs or p.step >= self.total_steps
        previews_here = self.dist is None or self.dist.is_main   # distributed: rank 0 draws them
        if tc.preview_every and (epoch % tc.preview_every == 0 or last_epoch) and previews_here:
            yield self._preview(model, epoch)
        yield model_snapshot(model, epoch=epoch, step=p.step, config=self.config.to_dict(),
                             meta=self.dataset.meta.to_dict())
        if tc.early_stopping and p.bad_epochs >= tc.early_stopping and not last_epoch:
            yield self._ended("early_stopped", f"validation has not improved for {p.bad_epochs} epochs")
            return True
        if self._stopping() and not last_epoch:
            yield self._ended("stopped", "stopped by the user")
            return True
        return False

    def _validate(self, model: torch.nn.Module) -> tuple[dict[str, float], Any]:
        return validate(model, self.val_split, step=self.progress.step, seed=self.config.train.seed,
                        device=self.device)

    def _save(self, tag: str, metrics: dict[str, float] | None = None) -> Iterator[Event]:
        path = self.checkpoints.save(tag, self.progress, metrics)
        if path is not None:
            yield self._emit(CheckpointSaved(path, self.progress.step, self.progress.epoch, tag))

    def _preview(self, model: torch.nn.Module, epoch: int) -> Preview:
        split = self.val_split if len(self.val_split) else self.train_split
        ev = make_preview(model, split, epoch=epoch, step=self.progress.step, seed=self.config.train.seed,
                          device=self.device)
        if self.run_dir is not None:
            save_preview_png(ev, self.run_dir / "samples" / f"epoch-{epoch:04d}.png")
        return ev
