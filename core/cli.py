"""The headless commands: `vae-explorer train | sample | eval | restore-eval`.

Qt-free (a server with no display runs them). Every user-fixable problem, bad argument included, ends as one line
`vae-explorer: error: ...` on stderr with exit status 2 and no traceback; a failed training run exits 1, Ctrl-C during
training saves a checkpoint and exits 130. Progress bars go to stderr so that stdout stays clean for `--json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, TextIO

import core
from core.config import MODEL_CONFIGS, PRESETS, Config, with_overrides
from core.errors import UserError

PROG = "vae-explorer"
COMMANDS = ("train", "sample", "eval", "restore-eval")
EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130

# Convenient flags of `train` and the config field each one sets; their help text comes from the field's metadata.
TRAIN_FLAGS: dict[str, tuple[str, str]] = {
    "--dataset": ("data", "name"), "--classes": ("data", "classes"), "--per-class": ("data", "per_class"),
    "--image-size": ("data", "image_size"), "--data-root": ("data", "data_root"), "--epochs": ("train", "epochs"),
    "--batch-size": ("train", "batch_size"), "--lr": ("train", "lr"), "--seed": ("train", "seed"),
    "--device": ("train", "device"), "--threads": ("train", "threads"),
}


class _ArgumentError(Exception):
    """argparse's complaint, turned into our one-line error instead of usage + exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(message)


# ------------------------------------------------------------------------------------------------ argument types
def _int_at_least(low: int):
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


def _float_in(low: float, high: float):
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


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _floats(text: str) -> list[float]:
    try:
        values = [float(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


# ------------------------------------------------------------------------------------------------ the parser
def _field_help(section: str, name: str) -> str:
    cls = {"data": Config().data, "train": Config().train}[section]
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


def _settings_epilog() -> str:
    """Every config field `--set` accepts, with its help text (the same metadata the GUI form is built from)."""
    lines = ["settings for --set SECTION.FIELD=VALUE (defaults come from the preset):"]
    sections = [("data", type(Config().data), ""), ("train", type(Config().train), "")]
    sections += [("model", cls, f" ({kind} models)") for kind, cls in MODEL_CONFIGS.items()]
    for prefix, cls, note in sections:
        for f in fields(cls):
            meta = f.metadata
            choices = f" [{'|'.join(meta['choices'])}]" if meta.get("choices") else ""
            lines.append(f"  {prefix + '.' + f.name:<24} {meta.get('help', '')}{choices}{note}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train image VAEs and diffusion models and look inside them.\n\n"
                    f"With no command, {PROG} opens the GUI (optionally on a checkpoint or run folder:\n"
                    f"`{PROG} [PATH]`). The commands below run headless, without Qt or a display.",
        epilog=f"Run `{PROG} COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"{PROG} {core.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    # ---- train
    p = sub.add_parser("train", help="train a model (a VAE by default) and write a run folder",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_settings_epilog(),
                       description="Train a model. Settings come from --preset (or --config), then the flags below, "
                                   "then --set overrides, applied in that order.")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="named configuration (default: digits)")
    p.add_argument("--config", metavar="JSON", help="configuration file (a run folder's config.json)")
    p.add_argument("--model", choices=list(MODEL_CONFIGS), help="model kind (its settings reset to the defaults "
                                                                "when it differs from the preset's)")
    for flag, (section, name) in TRAIN_FLAGS.items():
        p.add_argument(flag, dest=f"flag_{name}", metavar=name.upper(), help=_field_help(section, name))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any setting, e.g. --set model.latent_dim=32 (repeatable; listed below)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: a new timestamped folder under "
                                                    "the user's runs folder)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint "
                                                          "(e.g. RUN_DIR/checkpoints/last.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines; only the result")
    p.set_defaults(func=cmd_train)

    # ---- sample
    p = sub.add_parser("sample", help="draw class-conditional samples into a PNG grid (one row per class)")
    p.add_argument("checkpoint", help="a .safetensors checkpoint")
    p.add_argument("--classes", type=_csv, default=None, help="comma-separated class names or indices "
                                                               "(default: all)")
    p.add_argument("--n", type=_int_at_least(1), default=8, help="samples per class (default: 8)")
    p.add_argument("--temperature", type=_float_in(0.0, 10.0), default=None,
                   help="VAE: scale of the latent noise, 0..10 (default: 1)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="samples.png", help="output PNG (default: samples.png)")
    p.add_argument("--scale", type=_int_at_least(1), default=1, help="enlarge each pixel this many times")
    p.add_argument("--steps", type=_int_at_least(1), default=None, help="diffusion: sampler steps")
    p.add_argument("--guidance", type=_float_in(0.0, 50.0), default=None, help="diffusion: guidance scale")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default=None, help="diffusion: sampler")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.set_defaults(func=cmd_sample)

    # ---- eval
    p = sub.add_parser("eval", help="evaluate a checkpoint: ELBO, bits/dim, IWAE, SSIM/PSNR, accuracy, FID-style")
    p.add_argument("checkpoint", help="a .safetensors checkpoint")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split (default: test)")
    p.add_argument("--data-root", default=None, help="where the dataset is read from (default: the checkpoint's)")
    p.add_argument("--iwae-k", type=_int_at_least(0), default=64,
                   help="importance samples for the IWAE NLL estimate; 0 skips it (default: 64)")
    p.add_argument("--samples-per-class", type=_int_at_least(1), default=None,
                   help="generated images per class for accuracy and FID-style (default: 100; 30 for diffusion on "
                        "the CPU)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    # ---- restore-eval
    p = sub.add_parser("restore-eval", help="score restorers (VAE, diffusion, classical) on corrupted images")
    p.add_argument("--vae", metavar="CHECKPOINT", help="VAE checkpoint")
    p.add_argument("--diffusion", metavar="CHECKPOINT", help="diffusion checkpoint")
    p.add_argument("--corruptions", type=_csv, default=None, help="comma-separated corruptions (default: all)")
    p.add_argument("--strengths", type=_floats, default=None,
                   help="comma-separated strengths (default: each corruption's default)")
    p.add_argument("--n", type=_int_at_least(1), default=100, help="images from the test split (default: 100)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default: 0)")
    p.add_argument("--out", default=None, help="write the rows to a .csv or .json file")
    p.add_argument("--data-root", default=None, help="where the dataset is read from (default: the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_restore_eval)
    return parser


# ------------------------------------------------------------------------------------------------ main
def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _fail(message: str, stream: TextIO | None = None) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=stream or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 failed run, 2 usage/user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help and --version
            return int(e.code or 0)
        if args.command is None:
            raise _ArgumentError(f"no command given; choose one of {', '.join(COMMANDS)} (or run `{PROG}` with no "
                                 "arguments to open the GUI)")
        return args.func(args)
    except (_ArgumentError, UserError) as e:
        _fail(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# ------------------------------------------------------------------------------------------------ train
def cmd_train(args: argparse.Namespace) -> int:
    from core.cli_train import train_command  # its own file: the longest command

    return train_command(args)


# ------------------------------------------------------------------------------------------------ sample
def _device(name: str) -> Any:
    from core.device import resolve_device

    return resolve_device(name)


def resolve_classes(wanted: list[str] | None, class_names: tuple[str, ...]) -> list[int]:
    """Class indices for names or indices; all classes when `wanted` is None; UserError naming the known ones."""
    if wanted is None:
        return list(range(len(class_names)))
    if not wanted:
        raise UserError("--classes is empty; give class names or indices separated by commas")
    out = []
    for token in wanted:
        if token in class_names:
            out.append(class_names.index(token))
        elif token.lstrip("-").isdigit() and 0 <= int(token) < len(class_names):
            out.append(int(token))
        else:
            raise UserError(f"unknown class {token!r}; the model's classes are: {', '.join(class_names)} "
                            f"(or indices 0..{len(class_names) - 1})")
    return out


def tile_grid(images: Any, rows: int, columns: int, scale: int = 1) -> Any:
    """uint8 (N, H, W, C) -> one uint8 image (rows*H*scale, columns*W*scale, C), row-major."""
    import numpy as np

    n, h, w, c = images.shape
    grid = np.zeros((rows * h, columns * w, c), np.uint8)
    for i in range(min(n, rows * columns)):
        r, col = divmod(i, columns)
        grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = images[i]
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from core.checkpoint import load_model

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, not {out}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'samples.png'}")
    loaded = load_model(args.checkpoint, _device(args.device))
    model, meta = loaded.model, loaded.meta
    conditional = getattr(model, "num_classes", meta.num_classes) > 0
    classes = resolve_classes(args.classes, meta.class_names) if conditional else [0]
    labels = torch.tensor(classes).repeat_interleave(args.n)
    gen = torch.Generator().manual_seed(args.seed)
    if model.kind == "diffusion":
        if args.temperature is not None:
            raise UserError("--temperature applies to VAEs; for this diffusion model use --guidance, --steps or "
                            "--sampler")
        kw = {"steps": args.steps, "guidance": args.guidance, "sampler": args.sampler}
    else:
        if args.steps is not None or args.guidance is not None or args.sampler is not None:
            raise UserError("--steps, --guidance and --sampler apply to diffusion models; this checkpoint is a VAE")
        kw = {"temperature": 1.0 if args.temperature is None else args.temperature}
    with torch.no_grad():
        images = model.sample(labels, generator=gen, **kw)
    arr = (images.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    grid = tile_grid(arr, len(classes), args.n, args.scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(out)
    names = ", ".join(meta.class_names[c] for c in classes) if conditional else "unconditional"
    print(f"wrote {out} ({len(classes)} rows x {args.n} samples; rows: {names})")
    return 0


# ------------------------------------------------------------------------------------------------ eval
def _progress_bar(desc: str, quiet: bool):
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, file=sys.stderr, leave=False, disable=quiet, dynamic_ncols=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def _load_data(loaded: Any, data_root: str | None, device: Any) -> Any:
    from core.data import load_dataset

    if data_root is not None:   # read the data from elsewhere (the evaluation's judge too)
        loaded.config = loaded.config.replace(data=with_overrides(loaded.config.data, data_root=data_root))
    return load_dataset(loaded.config.data, device)


def format_eval(result: dict[str, Any]) -> str:
    rows = [("model", f"{result['model_kind']} on {result['dataset']} ({result['split']} split, "
                      f"{result['n_images']} images)")]
    labels = [("elbo", "ELBO (nats/image)"), ("recon", "reconstruction (nats/image)"), ("kl", "KL (nats/image)"),
              ("bits_per_dim", "bits/dim"), ("iwae_nll", f"IWAE NLL, k={result.get('iwae_k')} (nats/image)"),
              ("iwae_bits_per_dim", "IWAE bits/dim"), ("loss", "loss"), ("ssim", "SSIM of reconstructions"),
              ("psnr", "PSNR of reconstructions (dB)"), ("active_units", "active latent units"),
              ("conditional_accuracy", "conditional accuracy"), ("fid_like", "FID-style (classifier features)"),
              ("classifier_test_accuracy", "judge's test accuracy")]
    for key, label in labels:
        if key not in result:
            continue
        v = result[key]
        if key == "active_units":
            text = f"{v} / {result.get('latent_dim')}"
        elif key in ("ssim", "psnr"):
            text = f"{v:.4f} ± {result[key + '_std']:.4f}"
        elif key in ("conditional_accuracy", "classifier_test_accuracy"):
            text = f"{100 * v:.2f}%"
        else:
            text = f"{v:.4f}"
        rows.append((label, text))
    width = max(len(r[0]) for r in rows)
    lines = [f"{label:<{width}}  {text}" for label, text in rows]
    lines += [f"note: {result[k]}" for k in ("bits_per_dim_note", "fid_like_note") if k in result]
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    from core.checkpoint import load_model
    from core.metrics import evaluate

    device = _device(args.device)
    loaded = load_model(args.checkpoint, device)
    dataset = _load_data(loaded, args.data_root, device)
    bar, update = _progress_bar("evaluating", args.quiet)
    try:
        result = evaluate(loaded, dataset, args.split, progress=update, iwae_k=args.iwae_k,
                          n_per_class=args.samples_per_class, seed=args.seed)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_eval(result))
    return 0


# ------------------------------------------------------------------------------------------------ restore-eval
def cmd_restore_eval(args: argparse.Namespace) -> int:
    from core import restore
    from core.checkpoint import load_model

    if not args.vae and not args.diffusion:
        raise UserError("give --vae CHECKPOINT and/or --diffusion CHECKPOINT")
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out must end in .csv or .json, not {args.out}")
    corruptions = args.corruptions if args.corruptions is not None else list(restore.CORRUPTIONS)
    for name in corruptions:
        if name not in restore.CORRUPTIONS:
            raise UserError(f"unknown corruption {name!r}; choose from: {', '.join(restore.CORRUPTIONS)}")
    device = _device(args.device)
    vae = load_model(args.vae, device) if args.vae else None
    diffusion = load_model(args.diffusion, device) if args.diffusion else None
    if vae is not None and vae.model.kind != "vae":
        raise UserError(f"--vae {args.vae} holds a {vae.model.kind} model, not a VAE")
    if diffusion is not None and diffusion.model.kind != "diffusion":
        raise UserError(f"--diffusion {args.diffusion} holds a {diffusion.model.kind} model, not a diffusion model")
    first = vae or diffusion
    if vae is not None and diffusion is not None:
        a, b = vae.meta, diffusion.meta
        if (a.name, a.class_names, a.channels, a.image_size) != (b.name, b.class_names, b.channels, b.image_size):
            raise UserError(f"the VAE was trained on {a.name} ({a.channels}x{a.image_size}px) and the diffusion model "
                            f"on {b.name} ({b.channels}x{b.image_size}px); give two models of the same data")
    dataset = _load_data(first, args.data_root, device)
    bar, update = _progress_bar("restoring", args.quiet)
    try:
        rows = restore.batch_evaluate(vae, diffusion, dataset, corruptions=corruptions, strengths=args.strengths,
                                      n_images=args.n, seed=args.seed, progress=update)
    finally:
        bar.close()
    print(restore.format_table(rows))
    if args.out:
        writer = restore.write_json if args.out.lower().endswith(".json") else restore.write_csv
        print(f"wrote {writer(rows, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
