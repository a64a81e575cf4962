"""The Trainer: training as a plain iterator of events, with pause / resume / stop between steps.

`Trainer(config).run()` yields RunStarted, StepMetrics (every `log_every` steps), EpochSummary (with validation),
CheckpointSaved, Preview, ModelSnapshot (each epoch), LogMessage and, last, RunEnded. It never prints; the CLI shows a
progress bar and the GUI forwards the events as signals. It is generic over models: anything with `loss(x, y, *, step)
-> dict` (key "loss" is minimised) and `sample(labels, *, generator)` trains here. The model configures its own
optimisers and what its EMA averages (core/models/optimizers.py; a VAE-GAN's discriminator is an extra objective with
an optimiser of its own): the Trainer steps what it is given and has no branch on a model's kind.

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
import json
import math
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import Config, VAEConfig
from core.data.datasets import load_dataset
from core.device import resolve_device
from core.errors import UserError
from core.files import atomic_write_text
from core.images import as_float
from core.models import build_model
from core.models.optimizers import MODEL, ExtraObjective, Optimizers, configure_optimizers
from core.models.protocol import GenerativeModel, is_vae
from core.training import distributed, second_stage
from core.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from core.training.ema import EMA
from core.training.events import (
    CheckpointSaved,
    EpochSummary,
    Event,
    LogMessage,
    ModelSnapshot,
    Preview,
    RunEnded,
    RunStarted,
    StepMetrics,
    to_record,
)
from core.training.run_folder import make_preview, remove_leftovers, save_preview_png

VAL_BATCH = 512


def cosine_lr(base: float, step: int, total_steps: int) -> float:
    """Cosine decay from `base` at step 0 to 0 at the last step."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))


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


class _MetricSums:
    """Running sums of a step's metrics and gradient norm on the device (no sync per step), for the log window and
    the epoch."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.window = self.epoch = None
        self.window_n = self.epoch_n = 0

    def add(self, out: dict[str, torch.Tensor], grad_norm: torch.Tensor) -> None:
        if self.keys is None:
            self.keys = list(out)
        vals = torch.stack([*(out[k].detach().float() for k in self.keys), grad_norm.detach().float()])
        self.window = vals if self.window is None else self.window + vals
        self.epoch = vals if self.epoch is None else self.epoch + vals
        self.window_n += 1
        self.epoch_n += 1

    def take_window(self) -> tuple[dict[str, float], float]:
        """(the window's mean metrics, its mean gradient norm)."""
        *means, grad_norm = (self.window / self.window_n).tolist()
        self.window, self.window_n = None, 0
        return dict(zip(self.keys, means, strict=True)), grad_norm

    def take_epoch(self) -> dict[str, float]:
        means = (dict(zip(self.keys, (self.epoch[:-1] / self.epoch_n).tolist(), strict=True)) if self.epoch_n
                 else {})
        self.epoch, self.epoch_n = None, 0
        return means


class _Clock:
    """When the run (this process's part of it) started, how long it sat paused, and the window the images/s rate is
    measured over. Paused time is not training time: the ETA and an epoch's elapsed time leave it out."""

    def __init__(self, step: int) -> None:
        self.t_start = time.perf_counter()
        self.start_step = step
        self.paused_s = 0.0
        self.restart_window(step, self.t_start)

    def restart_window(self, step: int, now: float | None = None) -> None:
        self.window_t, self.window_step = (time.perf_counter() if now is None else now), step

    def elapsed(self, now: float | None = None) -> float:
        """Seconds spent running (not paused) since the run started in this process."""
        return (time.perf_counter() if now is None else now) - self.t_start - self.paused_s


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
        self._stop_agreed = False   # distributed runs: the stop flag all ranks agreed on at the last step
        self._stop = threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._log_file = None
        self.model: torch.nn.Module | None = None
        self.ema: EMA | None = None
        self.optimizers: Optimizers | None = None   # what the model configured (core/models/optimizers.py)
        self.second_stage: second_stage.SecondStage | None = None   # the mode of a run over a frozen first stage
        self.step = 0            # batches processed (skipped steps included)
        self.epoch = 0           # completed epochs
        self.pos = 0             # batches done inside the current epoch
        self.best: float | None = None
        self.bad_epochs = 0      # epochs since validation last improved (early stopping)
        self.skipped_steps = 0   # steps skipped in the whole run (non-finite, or gradient norm above grad_skip)
        self.last_checkpoint: str | None = None

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
                                            self.step))
            else:
                yield self._emit(LogMessage("error", reason, self.step))
            yield self._emit(RunEnded("failed", reason, self.step, self.epoch, self.best, self.last_checkpoint))
        finally:
            torch.set_num_threads(prev_threads)
            if self.dist is not None:
                self.loss_fn = None   # the DDP wrapper goes before its process group
                self.dist.close(self.model, together=together)
            if self._log_file is not None:
                with contextlib.suppress(OSError):      # its last flush may meet a full disk
                    self._log_file.close()
                self._log_file = None

    def _emit(self, event: Event) -> Event:
        """Record `event` in metrics.jsonl (when it is a recorded kind) and return it. A run record that can no longer
        be written (a full disk) stops being written; the run and its events go on, and the failure that follows
        (the next checkpoint cannot be saved either) is reported as such."""
        if self._log_file is not None:
            record = to_record(event)
            if record is not None:
                try:
                    self._log_file.write(json.dumps(record) + "\n")
                    self._log_file.flush()
                except OSError:
                    log, self._log_file = self._log_file, None
                    with contextlib.suppress(OSError):
                        log.close()
        return event

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
        if ck is not None:
            self._restore(ck)
        self.loss_fn = model.loss if self.dist is None else self.dist.wrap(model)
        mode = compile_mode(self.config, self.device, distributed=self.dist is not None)
        if mode is not None:   # the training step only; validation and previews stay eager
            if tc.compile == "auto":   # a graph dynamo cannot take runs eagerly instead of failing the run
                torch._dynamo.config.suppress_errors = True
            self.loss_fn = torch.compile(self.loss_fn, mode=None if mode == "default" else mode)
        self._open_run_folder()
        self.steps_per_epoch = math.ceil(len(self.train_split) / tc.batch_size)
        self.total_steps = tc.epochs * self.steps_per_epoch
        if tc.max_steps:
            self.total_steps = min(self.total_steps, tc.max_steps)
        yield self._emit(RunStarted(str(self.run_dir) if self.run_dir else None, self.config.to_dict(),
                                    ds.meta.to_dict(), self._describe_device(), self.total_steps,
                                    self.steps_per_epoch, self.step))
        for level, message in self._setup_notes(warnings, ck):
            yield self._emit(LogMessage(level, message, self.step))

    def _setup_notes(self, warnings: list[str], ck: Checkpoint | None) -> list[tuple[str, str]]:
        """(level, message) of what the run log says as the run starts."""
        notes = []
        ds = self.dataset
        if ds.skipped:  # unreadable files of a folder dataset: said in the run record, the GUI log and the terminal
            root = Path(ds.meta.name.removeprefix("folder:"))
            names = [str(Path(f).resolve().relative_to(root)) if Path(f).resolve().is_relative_to(root) else f
                     for f in ds.skipped[:5]]
            more = " ..." if len(ds.skipped) > 5 else ""
            notes.append(("warning", f"skipped {len(ds.skipped)} unreadable file(s) in {root}: {', '.join(names)}"
                                     f"{more}"))
        notes += [("warning", w) for w in warnings]
        if self.second_stage is not None:
            notes.append(("info", self.second_stage.describe(resumed=ck is not None)))
        if ck is not None:
            notes.append(("info", f"resumed from {ck.path} at step {self.step}"))
        return notes

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
        # The learning rate each param group was configured with: the cosine schedule decays it, and a resumed run
        # keeps it (not the one in the checkpoint, so that a changed train.lr takes effect).
        self._base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.optimizers.named().items()}
        return model

    def _restore(self, ck: Checkpoint) -> None:
        """Weights, EMA, optimizer, counters and every RNG as the checkpoint left them (what makes resume exact);
        UserError when they do not fit (a damaged or edited checkpoint)."""
        try:
            self._restore_state(ck)
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{ck.path}: its weights, optimizer or RNG state do not fit the model its config "
                            f"describes ({str(e).splitlines()[0][:200]}); the checkpoint is damaged, resume from "
                            "another one") from None

    def _restore_state(self, ck: Checkpoint) -> None:
        tc = self.config.train
        self.model.load_state_dict(ck.model_state)
        if self.ema is not None:
            self.ema.module.load_state_dict(ck.ema_state or ck.model_state)
        for name, opt in self.optimizers.named().items():
            if name in ck.optimizer_states:
                opt.load_state_dict(ck.optimizer_states[name])
                for g, lr in zip(opt.param_groups, self._base_lrs[name], strict=True):
                    g["lr"] = lr
        st = ck.train_state
        self.step, self.epoch, self.pos = int(st.get("step", 0)), int(st.get("epoch", 0)), int(st.get("pos", 0))
        self.best, self.bad_epochs = st.get("best"), int(st.get("bad_epochs", 0))
        self.skipped_steps = int(st.get("skipped_steps", 0))
        if "torch" in st:
            torch.set_rng_state(st["torch"])
        if self.device.type == "cuda":
            states = [st[k] for k in sorted(st) if k.startswith("cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        if self.dist is not None:
            self.dist.restore_rng(st, tc.seed)

    def _open_run_folder(self) -> None:
        if self.run_dir is None:
            return
        (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.run_dir)   # a save killed mid-write (kill -9) left its temporary file: resuming ends it
        (self.run_dir / "samples").mkdir(exist_ok=True)
        atomic_write_text(self.run_dir / "config.json", self.config.to_json())
        self._log_file = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    def _describe_device(self) -> str:
        if self.device.type == "cpu":
            desc = f"cpu ({torch.get_num_threads()} threads)"
        elif self.device.type == "cuda":
            desc = f"{self.device} {torch.cuda.get_device_name(self.device)}"
        else:
            desc = str(self.device)
        return self.dist.describe(desc) if self.dist is not None else desc

    def _run(self) -> Iterator[Event]:
        yield from self._setup()
        tc = self.config.train
        params = [p for g in self.optimizers.model.param_groups for p in g["params"] if p.requires_grad]
        cuda = self.device.type == "cuda"
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and tc.amp else contextlib.nullcontext
        sums = _MetricSums()
        clock = _Clock(self.step)
        bad_run = 0
        while self.epoch < tc.epochs and self.step < self.total_steps:
            epoch = self.epoch + 1
            self.model.train()
            batches = self.train_split.batches(tc.batch_size, shuffle=True, generator=batch_order_generator(tc.seed,
                                               epoch), flip=self.config.data.flip)
            for i, (xb, yb) in enumerate(batches):
                if i < self.pos:        # resuming inside this epoch: the same order, skip what was done
                    continue
                if not self._unpaused.is_set():
                    paused_at = time.perf_counter()
                    yield from self._wait_while_paused()
                    clock.paused_s += time.perf_counter() - paused_at
                    clock.restart_window(self.step)
                if self._stopping():
                    yield from self._save("interrupt")
                    yield self._emit(RunEnded("stopped", "stopped by the user", self.step, self.epoch, self.best,
                                              self.last_checkpoint))
                    return
                out, norm, skipped = self._train_step(xb, yb, params, autocast, cuda)
                if skipped is None:
                    bad_run = 0
                    sums.add(out, norm)
                else:   # skipped and counted; the run goes on unless it skips max_bad_steps in a row
                    bad_run += 1
                    if (yield from self._skipped_step(out["loss"], norm, skipped, bad_run, i)):
                        return
                self.step += 1
                self.pos = i + 1
                if self.step % tc.log_every == 0 and sums.window_n:
                    yield self._emit(self._step_metrics(epoch, *sums.take_window(), clock))
                if self.step >= self.total_steps:
                    break
            self.epoch, self.pos = epoch, 0
            if (yield from self._end_of_epoch(epoch, sums.take_epoch(), clock.elapsed())):
                return
        yield self._emit(RunEnded("completed", f"finished {self.epoch} epochs, {self.step} steps", self.step,
                                  self.epoch, self.best, self.last_checkpoint))

    def _wait_while_paused(self) -> Iterator[Event]:
        yield self._emit(LogMessage("info", "paused", self.step))
        while not self._unpaused.wait(0.5):   # blocks; wakes on resume() or stop()
            pass
        if not self._stop.is_set():
            yield self._emit(LogMessage("info", "resumed", self.step))

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor, params: list[torch.Tensor], autocast: Any,
                    cuda: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor, str | None]:
        """One optimisation step on a uint8 batch: (its metrics, the gradient norm of `params` before clipping, why
        it was skipped: None when applied, "non-finite" when a loss or the gradient is not finite, "grad_skip" when
        the gradient norm exceeds train.grad_skip). A skipped step changes nothing (its gradients are dropped)."""
        tc, opts = self.config.train, self.optimizers
        if self.dist is not None:
            xb, yb = self.dist.shard(xb, yb)
        x = as_float(xb)
        if cuda and tc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out = self.loss_fn(x, yb, step=self.step)
        loss = out["loss"]
        opts.model.zero_grad(set_to_none=True)
        (loss if self.dist is None else self.dist.weighted(loss)).backward()
        # clip_grad_norm_ in its two halves: the one norm it computes serves the log, the skip decision and the
        # clipping (no second pass), and nothing is clipped before the step is known to be applied.
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if self.dist is not None:   # whole-batch metrics, and the stop flag all ranks act on
            out, self._stop_agreed = self.dist.reduce_step(out, self._stop.is_set())
            loss = out["loss"]
        extra = self._extra_backward(x, yb, out, autocast)
        finite = torch.isfinite(loss) & torch.isfinite(norm)
        for _, extra_loss in extra:
            finite = finite & torch.isfinite(extra_loss)
        ok = finite & (norm <= tc.grad_skip) if tc.grad_skip > 0 else finite
        if not bool(ok):   # the one sync per step
            for opt in opts.named().values():
                opt.zero_grad(set_to_none=True)
            return out, norm, ("non-finite" if not bool(finite) else "grad_skip")
        for objective, _ in extra:
            objective.optimizer.step()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, tc.grad_clip, norm)
        if tc.lr_schedule == "cosine":   # a function of the step alone: exact resume needs no state
            for g, base in zip(opts.model.param_groups, self._base_lrs[MODEL], strict=True):
                g["lr"] = cosine_lr(base, self.step, self.total_steps)
        opts.model.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return out, norm, None

    def _extra_backward(self, x: torch.Tensor, yb: torch.Tensor, out: dict[str, torch.Tensor],
                        autocast: Any) -> list[tuple[ExtraObjective, torch.Tensor]]:
        """Each extra objective's loss on this batch (its terms join `out`) and its gradients: the (objective, loss)
        pairs that train at this step (a loss without a gradient, a VAE-GAN's discriminator before
        adversarial_start, does not). Taken before any optimiser steps: every loss sees the networks as they were at
        this step, as in VQGAN."""
        training = []
        for objective in self.optimizers.extra:
            objective.optimizer.zero_grad(set_to_none=True)
            with autocast():
                terms = objective.loss(x, yb, step=self.step)
            out.update({k: v.detach() for k, v in terms.items()})
            extra_loss = terms[objective.key]
            if extra_loss.requires_grad:
                extra_loss.backward()
                training.append((objective, extra_loss.detach()))
        return training

    def _skipped_step(self, loss: torch.Tensor, norm: torch.Tensor, why: str, bad_run: int, i: int
                      ) -> Iterator[Event]:
        """Report a skipped step (`why`: "non-finite", or "grad_skip" for a gradient spike); after `max_bad_steps`
        in a row, end the run as failed (returns True then): a threshold below the model's usual gradient norm
        would otherwise train nothing, silently."""
        self.skipped_steps += 1
        grad_skip = self.config.train.grad_skip
        if why == "grad_skip":
            what = f"gradient norm {float(norm):.4g} above train.grad_skip {grad_skip:g}"
        else:
            what = f"non-finite {'loss' if not torch.isfinite(loss) else 'gradient'}"
        yield self._emit(LogMessage("warning", f"{what} at step {self.step}: step skipped "
                                    f"({bad_run} in a row, {self.skipped_steps} in all)", self.step))
        if bad_run < self.config.train.max_bad_steps:
            return False
        self.step, self.pos = self.step + 1, i + 1
        # The skipped steps changed nothing: the weights in memory are the last good ones. Keep them.
        yield from self._save("last")
        kept = (f"the last good weights (step {self.step - bad_run}) are saved at {self.last_checkpoint}"
                if self.last_checkpoint else "no run folder, so nothing was saved")
        if why == "grad_skip":
            reason = (f"{bad_run} steps in a row had a gradient norm above train.grad_skip {grad_skip:g} (the last "
                      f"{float(norm):.4g}) at step {self.step - 1}; {kept}; raise train.grad_skip above the usual "
                      "grad_norm of the step records, or set it to 0 (off)")
        else:
            reason = (f"{bad_run} non-finite steps in a row (the loss or gradient became NaN/inf) at step "
                      f"{self.step - 1}; {kept}; try a lower learning rate, gradient clipping or a KL warm-up")
        yield self._emit(LogMessage("error", reason, self.step))
        yield self._emit(RunEnded("failed", reason, self.step, self.epoch, self.best, self.last_checkpoint))
        return True

    def _step_metrics(self, epoch: int, metrics: dict[str, float], grad_norm: float, clock: _Clock) -> StepMetrics:
        now = time.perf_counter()
        rate = (self.step - clock.window_step) * self.config.train.batch_size / max(now - clock.window_t, 1e-9)
        per_step = clock.elapsed(now) / max(self.step - clock.start_step, 1)
        clock.restart_window(self.step, now)
        return StepMetrics(self.step, epoch, metrics, self.optimizers.model.param_groups[0]["lr"], rate,
                           per_step * (self.total_steps - self.step), self.step / max(self.total_steps, 1),
                           grad_norm=grad_norm, skipped_steps=self.skipped_steps)

    # ------------------------------------------------------------------------------------------- per epoch
    def _stopping(self) -> bool:
        """A distributed run stops only where all ranks agreed to (else one rank would wait for the others forever)."""
        return self._stop.is_set() if self.dist is None else self._stop_agreed

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _end_of_epoch(self, epoch: int, train_metrics: dict[str, float], elapsed: float):
        tc = self.config.train
        model = self.eval_model
        model.eval()
        # Distributed: rank 0 validates on the whole split and sends the result, so the numbers are those a single
        # process reports for these weights, and all ranks take the same best / early-stopping decisions.
        val, kl_dims = (self._validate(model) if self.dist is None
                        else self.dist.from_main(lambda: self._validate(model)))
        scores = val or train_metrics
        if "elbo" in scores:
            score, better = scores["elbo"], (lambda a, b: a > b)
        else:
            score, better = scores.get("loss", float("nan")), (lambda a, b: a < b)
        is_best = math.isfinite(score) and (self.best is None or better(score, self.best))
        if is_best:
            self.best, self.bad_epochs = float(score), 0
        else:
            self.bad_epochs += 1
        yield self._emit(EpochSummary(epoch, self.step, train_metrics, val, is_best, elapsed, kl_dims))
        yield from self._save("last", val)
        if is_best:
            yield from self._save("best", val)
        last_epoch = epoch >= tc.epochs or self.step >= self.total_steps
        previews_here = self.dist is None or self.dist.is_main   # distributed: rank 0 draws them
        if tc.preview_every and (epoch % tc.preview_every == 0 or last_epoch) and previews_here:
            yield self._preview(model, epoch)
        yield ModelSnapshot(epoch, self.step, self.config.to_dict(), self.dataset.meta.to_dict(),
                            {k: v.detach().float().cpu().numpy().copy() if v.is_floating_point()
                             else v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()})
        if tc.early_stopping and self.bad_epochs >= tc.early_stopping and not last_epoch:
            yield self._emit(RunEnded("early_stopped", f"validation has not improved for {self.bad_epochs} epochs",
                                      self.step, self.epoch, self.best, self.last_checkpoint))
            return True
        if self._stopping() and not last_epoch:
            yield self._emit(RunEnded("stopped", "stopped by the user", self.step, self.epoch, self.best,
                                      self.last_checkpoint))
            return True
        return False

    @torch.no_grad()
    def _validate(self, model: GenerativeModel) -> tuple[dict[str, float], np.ndarray | None]:
        """Validation metrics (batch-size weighted means) under a fixed seed that leaves the training RNG alone."""
        if len(self.val_split) == 0:
            return {}, None
        vae = is_vae(model)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.config.train.seed + 12345)
            sums: torch.Tensor | None = None
            kl_sum = None
            keys: list[str] = []
            n = 0
            for xb, yb in self.val_split.batches(VAL_BATCH, shuffle=False):
                x = as_float(xb)
                if vae:
                    out = model.loss(x, yb, step=self.step, with_kl_dims=True)
                    kd = out.pop("kl_dims") * len(xb)
                    kl_sum = kd if kl_sum is None else kl_sum + kd
                else:
                    out = model.loss(x, yb, step=self.step)
                keys = list(out)
                vals = torch.stack([out[k].float() for k in keys]) * len(xb)
                sums = vals if sums is None else sums + vals
                n += len(xb)
        val = dict(zip(keys, (sums / n).tolist(), strict=True))
        return val, (None if kl_sum is None else (kl_sum / n).float().cpu().numpy())

    def _save(self, tag: str, metrics: dict[str, float] | None = None) -> Iterator[Event]:
        ranks_rng = self.dist.rng_states() if self.dist is not None else {}   # a collective: before rank 0 returns
        if self.run_dir is None:
            return
        name = "best" if tag == "best" else "last"
        state: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "pos": self.pos, "best": self.best,
                                 "bad_epochs": self.bad_epochs, "skipped_steps": self.skipped_steps,
                                 "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                state[f"cuda.{i:02d}"] = s
        state.update(ranks_rng)
        path = save_checkpoint(self.run_dir / "checkpoints" / f"{name}.safetensors", model=self.model,
                               config=self.config, meta=self.dataset.meta,
                               ema=self.ema.module if self.ema is not None else None,
                               optimizers=self.optimizers.named(), train_state=state, metrics=metrics)
        if name == "last":
            self.last_checkpoint = str(path)
        yield self._emit(CheckpointSaved(str(path), self.step, self.epoch, tag))

    def _preview(self, model: torch.nn.Module, epoch: int) -> Preview:
        split = self.val_split if len(self.val_split) else self.train_split
        ev = make_preview(model, split, epoch=epoch, step=self.step, seed=self.config.train.seed, device=self.device)
        if self.run_dir is not None:
            save_preview_png(ev, self.run_dir / "samples" / f"epoch-{epoch:04d}.png")
        return ev
