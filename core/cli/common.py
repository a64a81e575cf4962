"""What every headless command shares: the program name, exit statuses, argument types, the one-line error, the
progress bar and the device choice."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Any, NoReturn, TextIO

from core.errors import UserError

PROG = "vae-explorer"
COMMANDS = ("train", "sample", "eval", "restore-eval", "runs", "report", "experiment", "search")
EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130
# Requests past these would exhaust memory before they finish (a grid of 100,000 images per class, IWAE with
# millions of copies of each image); they are refused at once with their limit.
MAX_SAMPLES_PER_CLASS = 10_000
MAX_IWAE_K = 10_000

# Convenient flags of `train` and the config field each one sets; their help text comes from the field's metadata.
TRAIN_FLAGS: dict[str, tuple[str, str]] = {
    "--dataset": ("data", "name"), "--classes": ("data", "classes"), "--per-class": ("data", "per_class"),
    "--image-size": ("data", "image_size"), "--data-root": ("data", "data_root"), "--epochs": ("train", "epochs"),
    "--batch-size": ("train", "batch_size"), "--lr": ("train", "lr"), "--seed": ("train", "seed"),
    "--device": ("train", "device"), "--threads": ("train", "threads"),
}


class ArgumentError(Exception):
    """argparse's complaint, turned into our one-line error instead of usage + exit."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(message)


# ------------------------------------------------------------------------------------------------ argument types
def int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    parse.__name__ = "integer"
    return parse


def int_in(low: int, high: int):
    def parse(text: str) -> int:
        value = int_at_least(low)(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, not {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(low: float, high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}, not {text}")
        return value

    parse.__name__ = "number"
    return parse


def comma_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def comma_floats(text: str) -> list[float]:
    try:
        values = [float(s) for s in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values



# ------------------------------------------------------------------------------------------------ output
def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def fail(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROG}: error: {one_line(message)}", file=stream or sys.stderr)


def progress_bar(desc: str, quiet: bool):
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, file=sys.stderr, leave=False, disable=quiet, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def device_named(name: str) -> Any:
    from core.device import resolve_device

    return resolve_device(name)


# Flags that set a source of z (core/latent/samplers.py): flag -> (the `--from` sources that read it, what it sets).
SAMPLER_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "components": (("density",), "the fitted density"), "covariance": (("density",), "the fitted density"),
    "top_layer": (("density", "diffusion-prior"), "a fitted source of z"),
    "prior": (("diffusion-prior",), "the diffusion prior"),
    "prior_train_steps": (("diffusion-prior",), "the diffusion prior"),
    "match_spread": (("diffusion-prior",), "the diffusion prior"),
    "prior_per_dim": (("diffusion-prior",), "the diffusion prior"),
}


def sampler_settings(args: Any, sources: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each `--from` source's settings from the command's flags (samplers.py's fields); one UserError for a flag no
    chosen source reads."""
    per: dict[str, dict[str, Any]] = {name: {} for name in sources}
    for flag, (readers, what) in SAMPLER_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None or value is False:
            continue
        used = [name for name in sources if name in readers]
        if not used:
            raise UserError(f"--{flag.replace('_', '-')} sets {what}, which is not used with --from "
                            f"{getattr(args, 'source', 'prior')}: add --from {readers[0]}")
        for name in used:
            per[name][flag] = value
    if "diffusion-prior" in per:
        from core.latent.diffusion_prior import DiffusionPriorSettings

        given = per["diffusion-prior"]
        sampling = {"sample_steps": getattr(args, "steps", None), "guidance": getattr(args, "guidance", None),
                    "train_steps": given.pop("prior_train_steps", None), "top_layer": given.pop("top_layer", None),
                    "match_spread": given.pop("match_spread", None),
                    "whiten": False if given.pop("prior_per_dim", None) else None}
        settings = DiffusionPriorSettings(**{k: v for k, v in sampling.items() if v is not None})
        settings.check()
        per["diffusion-prior"] = {"settings": settings, "prior_file": given.get("prior")}
    return per


def fit_sampler(name: str, loaded: Any, dataset: Any, quiet: bool, **settings: Any) -> Any:
    """A `--from` source of z (samplers.py's registry) fitted to the model's training split, with a progress bar."""
    from core.latent.samplers import make_sampler

    sampler = make_sampler(name, **settings)
    opened: list[Any] = []   # the bar opens at the first progress: a refused input prints its one line alone

    def update(done: int, total: int) -> None:
        if not opened:
            opened.append(progress_bar("fitting the latent density" if name == "density" else f"fitting the {name}",
                                       quiet))
        opened[0][1](done, total)

    try:
        return sampler.fit(loaded, dataset, progress=update)
    finally:
        if opened:
            opened[0][0].close()


class StopOnSignals:
    """Ctrl-C / SIGTERM: note the signal in `received` (the long work sees it and stops after its step, with its
    checkpoint); a second one aborts at once. For commands that run many runs (experiment, search)."""

    def __init__(self, received: list[int]) -> None:
        self.received = received
        self.previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.received:
            raise KeyboardInterrupt
        self.received.append(signum)
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        print(f"{what}: stopping after this step and saving a checkpoint (again to abort without saving)",
              file=sys.stderr)

    def __enter__(self) -> list[int]:
        try:
            self.previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:      # not the main thread: no handlers
            self.previous = {}
        return self.received

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
