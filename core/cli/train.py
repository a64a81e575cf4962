"""`vae-explorer train`: settings from preset / config file / flags / --set, a progress bar over Trainer.run().

Ctrl-C asks the Trainer to stop (it saves an "interrupt" checkpoint) and exits 130 with the resume command; a second
Ctrl-C aborts at once. SIGTERM (what `docker stop`, systemd, Slurm and torchrun send) stops the run the same way and
exits 143; SIGHUP (the terminal closed, the ssh session dropped) too, exiting 129. The run folder is locked for the
run (one writer, see core.training.run_folder); a folder holding an earlier run needs --resume or --overwrite.
Under torchrun (see core.training.distributed) every rank runs this command; rank 0 alone prints and locks.

A UserError while setting up exits 2 like a bad flag; a run that fails later exits 1 with its
reason (out of memory: with the advice to use a smaller batch; the last checkpoint is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from core.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, PROG, TRAIN_FLAGS, fail, one_line
from core.config import MODEL_CONFIGS, Config, preset, with_overrides
from core.errors import UserError
from core.training import distributed
from core.training.events import (
    CheckpointSaved,
    EpochSummary,
    LogMessage,
    RunEnded,
    RunStarted,
    StepMetrics,
)


def build_config(args: argparse.Namespace) -> Config:
    """The run's configuration: preset / --config / resumed checkpoint, then --model, the flags, then --set."""
    if args.config and args.preset:
        raise UserError("give either --preset or --config, not both")
    if getattr(args, "prior_of", None):
        cfg = _second_stage_config(args)
    elif args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UserError(f"no configuration file at {path}")
        cfg = Config.from_file(path)
    elif args.resume and not args.preset:
        from core.training.checkpoint import load_checkpoint

        cfg = load_checkpoint(args.resume).config
    else:
        cfg = preset(args.preset or "digits")
    if args.model and args.model != cfg.model.kind:
        cfg = cfg.replace(model=MODEL_CONFIGS[args.model]())
    if args.flag_classes is not None and not any(c.strip() for c in str(args.flag_classes).split(",")):
        raise UserError("--classes is empty; give class names or indices separated by commas (or leave it out to "
                        "train on every class)")
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for section, name in TRAIN_FLAGS.values():
        value = getattr(args, f"flag_{name}")
        if value is not None:
            sections[section][name] = value
    for item in args.overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in sections or not name:
            raise UserError(f"--set expects SECTION.FIELD=VALUE with SECTION data, model or train, not {item!r}")
        sections[section][name] = value
    return Config(data=with_overrides(cfg.data, **sections["data"]),
                  model=with_overrides(cfg.model, **sections["model"]),
                  train=with_overrides(cfg.train, **sections["train"]))


def _second_stage_config(args: argparse.Namespace) -> Config:
    """`--prior-of CHECKPOINT`: the VQ-VAE checkpoint's own settings, as the second stage that fits its code prior."""
    from core.training.checkpoint import load_checkpoint

    given = [flag for flag, value in (("--preset", args.preset), ("--config", args.config), ("--resume", args.resume),
                                      ("--model", args.model)) if value]
    if given:
        raise UserError(f"--prior-of takes the data and model settings from its checkpoint; leave out {given[0]} "
                        "(to continue an interrupted prior run, give only --resume)")
    path = Path(args.prior_of)
    ck = load_checkpoint(path)
    if ck.config.model.kind != "vqvae":
        raise UserError(f"--prior-of {path} holds a {ck.config.model.kind} model; a code prior is fitted to a VQ-VAE "
                        "checkpoint (train one with --model vqvae or --preset digits-vq)")
    if ck.config.model.stage != "codes":
        raise UserError(f"--prior-of {path} already holds a code prior (it is a prior run's checkpoint); give the "
                        "VQ-VAE's own checkpoint (its first stage: model.first_stage in its config.json)")
    model = with_overrides(ck.config.model, stage="prior", first_stage=str(path.resolve()))
    return Config(ck.config.data, model, with_overrides(ck.config.train, epochs=model.prior_epochs))


def _is_oom(reason: str) -> bool:
    text = reason.lower()
    return "out of memory" in text or "memoryerror" in text or "cannot allocate memory" in text


def _fmt_metrics(values: dict[str, float]) -> str:
    """The headline numbers: ELBO and its terms for a VAE (the loss is -ELBO without warm-up), else the loss."""
    keys = ("elbo", "recon", "kl") if "elbo" in values else ("loss",)
    return " ".join(f"{k} {values[k]:.4g}" for k in keys if k in values)


def train_command(args: argparse.Namespace) -> int:
    from core.training.trainer import Trainer

    _check_resume(args.resume)
    cfg = build_config(args)
    run_dir = _run_dir_for(args, cfg)
    main_rank = distributed.is_main_process()
    # Rank 0 alone writes the run folder, and holds its lock (one writer) for the whole run.
    with _lock_run_folder(args, run_dir) if main_rank else contextlib.nullcontext():
        sink = _tensorboard_sink(run_dir) if getattr(args, "tensorboard", False) and main_rank else None
        trainer = Trainer(cfg, run_dir=run_dir, resume=args.resume)
        console = _Console(quiet=args.quiet or not main_rank, total_epochs=cfg.train.epochs)
        with _stop_on_signals(trainer, console.say if main_rank else None) as signals:
            end = console.follow(trainer, sink)
    stopped_code = 128 + signals[0] if signals else EXIT_INTERRUPTED   # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
    if not main_rank and end is not None and end.status != "failed":   # rank 0 reports; a failure is said by all
        return stopped_code if end.status == "stopped" else 0
    code = _report_end(end, console.checkpoints, cfg, run_dir)
    return stopped_code if code == EXIT_INTERRUPTED else code


def _lock_run_folder(args: argparse.Namespace, run_dir: Path) -> Any:
    """The run folder's lock (RunFolderLock). A folder that holds files is only written to when the run continues
    there (--resume of one of its own checkpoints, or into an empty folder) or with --overwrite (the old files are
    moved aside)."""
    from core.training.run_folder import acquire_run_folder

    overwrite = bool(getattr(args, "overwrite", False))
    resume = Path(args.resume).resolve() if args.resume else None
    continues_here = resume is not None and resume.is_relative_to(run_dir.resolve())
    if overwrite and continues_here:
        raise UserError(f"--overwrite would move aside the checkpoint --resume continues from ({args.resume}); "
                        "give one of them")
    lock = acquire_run_folder(run_dir, resume=continues_here, overwrite=overwrite, command=f"{PROG} train")
    for note in lock.notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    return lock


def _tensorboard_sink(run_dir: Path) -> Any:
    """TensorBoard event files in RUN_DIR/tensorboard (UserError naming the install command when the package is
    missing: said before any training)."""
    from core.training.tensorboard import TensorBoardSink

    return TensorBoardSink(run_dir / "tensorboard")


def _check_resume(resume: str | None) -> None:
    if not resume:
        return
    path = Path(resume)
    if path.is_dir():
        raise UserError(f"--resume {path} is a folder; give a checkpoint file, e.g. "
                        f"{path / 'checkpoints' / 'last.safetensors'}")
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint at {path}")


def _run_dir_for(args: argparse.Namespace, cfg: Config) -> Path:
    """--out; else, resuming, the checkpoint's own run folder; else a new folder under the user's runs folder."""
    if args.out:
        run_dir = Path(args.out)
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"--out {run_dir} is a file; give a folder for the run")
        return run_dir
    if args.resume and Path(args.resume).resolve().parent.name == "checkpoints":
        return Path(args.resume).resolve().parent.parent
    from core.training.run_folder import new_run_dir

    return new_run_dir(cfg)


_SIGHUP = getattr(signal, "SIGHUP", None)   # not on Windows


def _detach_from_terminal() -> None:
    """SIGHUP: the terminal is gone, and writing to it would fail (EIO) in the middle of saving. What went to it goes
    to /dev/null from now on; output redirected to a file or a pipe carries on."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                os.dup2(devnull, fd)
    os.close(devnull)


@contextlib.contextmanager
def _stop_on_signals(trainer: Any, say: Any) -> Iterator[list[int]]:
    """Ctrl-C, SIGTERM or SIGHUP asks the trainer to stop after this step (it saves an interrupt checkpoint); a
    second Ctrl-C or SIGTERM aborts. Yields the list of the signals received."""
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if signum == _SIGHUP:
            _detach_from_terminal()
        if received:                # a second one: give up at once
            if signum == _SIGHUP:   # the terminal closing after a Ctrl-C: let the first stop finish its checkpoint
                return
            raise KeyboardInterrupt
        received.append(signum)
        trainer.stop()
        if say is not None:
            what = {signal.SIGINT: "Ctrl-C", _SIGHUP: "SIGHUP (the terminal closed)"}.get(signum, "SIGTERM")
            with contextlib.suppress(OSError):
                say(f"{what}: stopping after this step and saving a checkpoint (Ctrl-C again to abort without "
                    "saving)")

    signals = [signal.SIGINT, signal.SIGTERM] + ([_SIGHUP] if _SIGHUP is not None else [])
    try:
        previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    except ValueError:           # not the main thread (e.g. an embedding application): no handlers
        previous = {}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class _Console:
    """What the terminal shows of a run: a progress bar, one line per epoch, warnings and errors (stderr; the epoch
    lines and the result on stdout)."""

    def __init__(self, *, quiet: bool, total_epochs: int) -> None:
        self.quiet, self.total_epochs = quiet, total_epochs
        self.bar: Any = None
        self.started = False
        self.user_errors: list[str] = []   # LogMessage errors that carry a UserError's message (no traceback)
        self.checkpoints: dict[str, str] = {}

    def say(self, text: str, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        if self.bar is not None:
            self.bar.write(text, file=stream)
        else:
            print(text, file=stream)

    def follow(self, trainer: Any, sink: Any = None) -> RunEnded | None:
        """Drive `trainer.run()` to its end, showing its events (and handing each to `sink`, e.g. TensorBoard); the
        RunEnded (None if there was none)."""
        import torch

        end = None
        try:
            for ev in trainer.run():
                if sink is not None:
                    sink(ev)
                end = self.show(ev) or end
        except (MemoryError, torch.OutOfMemoryError) as e:  # raised outside the Trainer's own guard
            progress = trainer.progress
            end = RunEnded("failed", f"out of memory ({type(e).__name__})", progress.step, progress.epoch, None,
                           trainer.last_checkpoint)
        finally:
            if self.bar is not None:
                self.bar.close()
            if sink is not None:
                sink.close()
                if sink.failed:
                    self.say(f"warning: {sink.failed}")
        return end

    def show(self, ev: Any) -> RunEnded | None:
        if isinstance(ev, RunStarted):
            self._started(ev)
        elif isinstance(ev, StepMetrics) and self.bar is not None:
            self.bar.update(ev.step - self.bar.n)
            m = ev.metrics
            post = {k: f"{m[k]:.4g}" for k in ("loss", "recon", "kl") if k in m}
            post["img/s"] = f"{ev.images_per_s:.0f}"
            post["eta"] = time.strftime("%H:%M:%S", time.gmtime(max(ev.eta_s, 0)))
            self.bar.set_postfix(post, refresh=False)
        elif isinstance(ev, EpochSummary):
            self._epoch(ev)
        elif isinstance(ev, CheckpointSaved):
            self.checkpoints[ev.tag] = ev.path
        elif isinstance(ev, LogMessage):
            self._log(ev)
        elif isinstance(ev, RunEnded):
            if ev.status == "failed" and not self.started and ev.reason in self.user_errors:
                # A UserError while setting up (bad dataset, bad checkpoint): the user's to fix, like a bad flag.
                raise UserError(ev.reason)
            return ev
        return None

    def _started(self, ev: RunStarted) -> None:
        from tqdm import tqdm

        self.started = True
        meta = ev.meta
        self.total_epochs = int(ev.config["train"]["epochs"])
        if self.quiet:
            return
        print(f"training {ev.config['model']['kind']} on {meta['name']} ({len(meta['class_names'])} classes, "
              f"{meta['channels']}x{meta['image_size']}x{meta['image_size']}) on {ev.device}; run folder "
              f"{ev.run_dir}", file=sys.stderr)
        self.bar = tqdm(total=ev.total_steps, initial=ev.start_step, unit="step", file=sys.stderr,
                        dynamic_ncols=True, leave=False, smoothing=0.1)

    def _epoch(self, ev: EpochSummary) -> None:
        if self.bar is not None:
            self.bar.update(ev.step - self.bar.n)
        if not self.quiet:
            val = f" | val {_fmt_metrics(dict(ev.val))}" if ev.val else ""
            self.say(f"epoch {ev.epoch}/{self.total_epochs}  train {_fmt_metrics(dict(ev.train))}{val}"
                     f"{'  (best)' if ev.is_best else ''}  [{ev.elapsed_s:.1f}s]", sys.stdout)

    def _log(self, ev: LogMessage) -> None:
        if ev.level == "error" and not self.started:
            self.user_errors.append(ev.message)
        elif ev.level in ("warning", "error") and not (self.quiet and ev.level == "warning"):
            self.say(f"{ev.level}: {ev.message.splitlines()[0]}")


def _report_end(end: RunEnded | None, checkpoints: dict[str, str], cfg: Config, run_dir: Path | None) -> int:
    last = (end.last_checkpoint if end is not None else None) or checkpoints.get("interrupt") or checkpoints.get("last")
    if end is None:
        fail("training ended without a result")
        return EXIT_FAILED
    if end.status == "stopped":
        where = checkpoints.get("interrupt") or last
        if where:
            world = distributed.world_size()
            launcher = f"torchrun --nproc_per_node {world} -m core.cli" if world > 1 else PROG   # same world: exact
            print(f"{PROG}: interrupted at step {end.step}; checkpoint saved to {where}; resume with: "
                  f"{launcher} train --resume {where}", file=sys.stderr)
        else:
            print(f"{PROG}: interrupted at step {end.step} before any checkpoint was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if end.status == "failed":
        reason = one_line(end.reason)
        if _is_oom(reason):
            kept = f"; the last checkpoint is kept at {last}" if last else ""
            smaller = max(1, cfg.train.batch_size // 2)
            print(f"{PROG}: error: ran out of memory with batch size {cfg.train.batch_size}; try a smaller batch, "
                  f"e.g. --batch-size {smaller}{kept}", file=sys.stderr)
        else:
            kept = f" (last checkpoint: {last})" if last else ""
            log = run_dir / "metrics.jsonl" if run_dir else None
            details = f"; details in {log}" if log is not None and log.is_file() else ""
            print(f"{PROG}: error: training failed: {reason}{kept}{details}", file=sys.stderr)
        return EXIT_FAILED
    best = f", best validation {end.best_val:.4f}" if end.best_val is not None else ""
    print(f"{end.status.replace('_', ' ')}: {end.reason}{best}")
    for tag in ("best", "last"):
        if tag in checkpoints:
            print(f"  {tag} checkpoint: {checkpoints[tag]}")
    return 0
