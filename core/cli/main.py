"""The headless commands: `vae-explorer train | sample | eval | restore-eval | runs | report | experiment | search`.

Qt-free (a server with no display runs them). Every user-fixable problem, bad argument included, ends as one line
`vae-explorer: error: ...` on stderr with exit status 2 and no traceback; a failed training run exits 1, Ctrl-C during
training saves a checkpoint and exits 130. Progress bars go to stderr so that stdout stays clean for `--json`.
Each command lives in its own module and is imported only when it runs, so `--help` loads no torch.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from dataclasses import fields

import core
from core.cli.common import (
    COMMANDS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    MAX_IWAE_K,
    MAX_SAMPLES_PER_CLASS,
    PROG,
    TRAIN_FLAGS,
    ArgumentError,
    Parser,
    comma_floats,
    comma_list,
    fail,
    float_in,
    int_at_least,
    int_in,
)
from core.config import MAX_SEED, MODEL_CONFIGS, PRESETS, Config
from core.errors import UserError
from core.files import printable
from core.latent.samplers import SAMPLERS

# command -> (module, function): imported when the command runs.
_HANDLERS = {"train": ("core.cli.train", "train_command"), "sample": ("core.cli.sample", "sample_command"),
             "eval": ("core.cli.evaluate", "eval_command"),
             "restore-eval": ("core.cli.evaluate", "restore_eval_command"),
             "runs": ("core.cli.runs", "runs_command"), "report": ("core.cli.report", "report_command"),
             "experiment": ("core.cli.experiment", "experiment_command"),
             "search": ("core.cli.search", "search_command")}


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


def _add_source_settings(p: argparse.ArgumentParser) -> None:
    """The settings of a fitted source of z (--from density / diffusion-prior), shared by sample and eval."""
    p.add_argument("--components", type=int_in(1, 64), default=None,
                   help="with --from density: Gaussian components per class, 1..64 (default: 4)")
    p.add_argument("--covariance", choices=("full", "diag"), default=None,
                   help="with --from density: full or diagonal covariances (default: full)")
    p.add_argument("--top-layer", action="store_true", default=None,
                   help="with --from density or diffusion-prior on a hierarchical VAE: fit the top latent layer only "
                        "(the layers below from their prior)")
    p.add_argument("--prior", metavar="FILE", default=None,
                   help="with --from diffusion-prior: a .safetensors file that keeps the fitted prior: read when it "
                        "exists (it must be this model's), else fitted and written there")
    p.add_argument("--prior-train-steps", type=int_in(1, 1_000_000), default=None,
                   help="with --from diffusion-prior: optimiser steps of the prior's fit (default: 2000)")
    p.add_argument("--prior-per-dim", action="store_true", default=None,
                   help="with --from diffusion-prior: fit in standardised latent dimensions instead of whitened ones "
                        "(the README's real-MNIST recipe: with --top-layer, --prior-train-steps 6000, --match-spread)")
    p.add_argument("--match-spread", action="store_true", default=None,
                   help="with --from diffusion-prior: scale each class's draws about their mean to the training "
                        "latents' class spread (the spread a Gaussian mixture has: more recall, see the README)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    p.add_argument("--prior-of", metavar="CHECKPOINT", default=None,
                   help="train the code prior of a trained VQ-VAE (the second stage, the VQ-VAE frozen): its data "
                        "and model settings, train.epochs = its model.prior_epochs; the run's checkpoints hold both")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint "
                                                          "(e.g. RUN_DIR/checkpoints/last.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out folder that already holds a "
                                                            "run: its files are moved to a new folder beside it "
                                                            "(RUN_DIR.replaced-TIME), never deleted")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines; only the result")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files to "
                                                              "RUN_DIR/tensorboard (needs the tensorboard package)")

    # ---- sample
    p = sub.add_parser("sample", help="draw class-conditional samples into a PNG grid (one row per class)")
    p.add_argument("checkpoint", help="a .safetensors checkpoint")
    p.add_argument("--classes", type=comma_list, default=None, help="comma-separated class names or indices "
                                                               "(default: all)")
    p.add_argument("--n", type=int_in(1, MAX_SAMPLES_PER_CLASS), default=8,
                   help=f"samples per class, at most {MAX_SAMPLES_PER_CLASS} (default: 8)")
    p.add_argument("--temperature", type=float_in(0.0, 10.0), default=None,
                   help="VAE: scale of the latent noise, 0..10 (default: 1); VQ-VAE: the code prior's temperature "
                        "(default: its model.sample_temperature)")
    p.add_argument("--from", dest="source", choices=tuple(SAMPLERS), default="prior",
                   help="VAE: where z comes from: " + "; ".join(f"{k} = {c.summary}" for k, c in SAMPLERS.items())
                        + " (the fitted ones read the training data; default: prior)")
    p.add_argument("--near", metavar="CSV", default=None,
                   help="VAE: sample z from a Gaussian mixture fitted to the images a CSV lists (split,index columns: "
                        "a selection exported from the latent map), \"more like these\"; rows default to their classes")
    _add_source_settings(p)
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="random seed (default: 0)")
    p.add_argument("--out", default="samples.png", help="output PNG (default: samples.png)")
    p.add_argument("--scale", type=int_in(1, 64), default=1, help="enlarge each pixel this many times (1..64)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help="diffusion, or --from diffusion-prior: sampler steps")
    p.add_argument("--guidance", type=float_in(0.0, 50.0), default=None,
                   help="diffusion, or --from diffusion-prior: classifier-free guidance scale")
    p.add_argument("--sampler", choices=("ddpm", "ddim", "dpm++"), default=None, help="diffusion: sampler")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")

    # ---- eval
    p = sub.add_parser("eval", help="evaluate a checkpoint: ELBO, bits/dim, IWAE, SSIM/PSNR, accuracy, FID-style")
    p.add_argument("checkpoint", help="a .safetensors checkpoint")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split (default: test)")
    p.add_argument("--data-root", default=None, help="where the dataset is read from (default: the checkpoint's)")
    p.add_argument("--iwae-k", type=int_in(0, MAX_IWAE_K), default=64,
                   help=f"importance samples for the IWAE NLL estimate, at most {MAX_IWAE_K}; 0 skips it "
                        "(default: 64)")
    p.add_argument("--samples-per-class", type=int_in(1, MAX_SAMPLES_PER_CLASS), default=None,
                   help="generated images per class for accuracy and FID-style (default: 100; 30 for diffusion on "
                        "the CPU)")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="random seed (default: 0)")
    p.add_argument("--from", dest="source", choices=(*SAMPLERS, "both", "all"), default="prior",
                   help="VAE: judge samples with z from " + "; ".join(f"{k} = {c.summary}" for k, c in SAMPLERS.items())
                        + "; both = prior and density; all = every one (the numbers of the second and later carry "
                          "their name, e.g. 'density_recall'; default: prior)")
    _add_source_settings(p)
    p.add_argument("--hole-k", type=int_in(1, 1000), default=None,
                   help="VAE: the hole score's k: a sampled z is in a hole when its nearest data latent of its class "
                        "is farther than that latent's own k-th neighbour; each class of the split needs more than k "
                        "images (default: 5)")
    p.add_argument("--fid", choices=("auto", "inception", "judge", "fetch"), default="auto",
                   help="the Fréchet score: auto = the Inception FID when torch-fidelity and its weights are here "
                        "(never downloads), else our classifier's; inception = require it; judge = classifier only; "
                        "fetch = download the Inception weights first (default: auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    p.add_argument("--save", action="store_true",
                   help="also keep the result in the checkpoint's run folder, RUN/eval/CHECKPOINT-SPLIT-DIGEST.json "
                        "(the same settings again replace their own file); the runs report and the Runs tab show "
                        "the newest test-split one of a run without an experiment's eval.json")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    # ---- restore-eval
    p = sub.add_parser("restore-eval", help="score restorers (VAE, diffusion, classical) on corrupted images")
    p.add_argument("--vae", metavar="CHECKPOINT", help="VAE checkpoint")
    p.add_argument("--diffusion", metavar="CHECKPOINT", help="diffusion checkpoint")
    p.add_argument("--corruptions", type=comma_list, default=None, help="comma-separated corruptions (default: all)")
    p.add_argument("--strengths", type=comma_floats, default=None,
                   help="comma-separated strengths (default: each corruption's default)")
    p.add_argument("--n", type=int_at_least(1), default=100, help="images from the test split (default: 100)")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="random seed (default: 0)")
    p.add_argument("--out", default=None, help="write the rows to a .csv or .json file")
    p.add_argument("--data-root", default=None, help="where the dataset is read from (default: the checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    # ---- runs
    p = sub.add_parser("runs", help="list run folders: status, epochs, best validation, headline metrics")
    p.add_argument("folders", nargs="*", metavar="FOLDER",
                   help="run folders or folders of runs (default: the user's runs folder)")
    p.add_argument("--csv", metavar="FILE", default=None, help="also write the table (with the settings that differ) "
                                                               "to a CSV file")

    # ---- report
    p = sub.add_parser("report", help="write one self-contained HTML report of runs (curves, samples, metrics, "
                                      "configs)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    p.add_argument("--out", default="report.html", help="output HTML file (default: report.html)")
    p.add_argument("--title", default=None, help="the report's title")

    # ---- experiment
    p = sub.add_parser("experiment", help="run a built-in experiment (reference-study, beta-sweep): train and "
                                          "evaluate its runs, then write DIR/report.html",
                       description="Train and evaluate every run of a built-in experiment into DIR/<run> (ordinary "
                                   "run folders) and write DIR/report.html. Run the same command again to continue "
                                   "an interrupted experiment: finished runs are not trained again.")
    p.add_argument("name", metavar="NAME", help="reference-study or beta-sweep")
    p.add_argument("--dataset", default="digits", help="digits, mnist, fashion-mnist, cifar10 or folder:PATH "
                                                       "(default: digits)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the experiment's run folders and report")
    p.add_argument("--scale", choices=("quick", "full"), default="quick",
                   help="quick: small models and few epochs (minutes on a CPU); full: the presets' own settings "
                        "(default: quick)")
    p.add_argument("--from", dest="sources", default="prior", metavar="SOURCE[,SOURCE]",
                   help="VAE runs: also judge samples with z from these sources, each fitted to the run's model ("
                        + ", ".join(SAMPLERS) + ", or all; the prior is always judged): each source's accuracy, "
                        "Fréchet score, precision, recall and hole score in the report's table per source. The "
                        "diffusion prior's fit takes about a minute per run (default: prior)")
    p.add_argument("--prior-train-steps", type=int_in(1, 1_000_000), default=None,
                   help="with --from diffusion-prior: optimiser steps of each run's prior fit (default: 2000)")
    p.add_argument("--torchrun", type=int_in(1, 1024), default=None, metavar="N",
                   help="train each run with torchrun on N processes (one per GPU), one run after another "
                        "(default: in this process)")
    p.add_argument("--parallel", type=int_in(1, 1024), default=None, metavar="N",
                   help="train N runs at once, each in its own process: one GPU each (CUDA_VISIBLE_DEVICES) or an "
                        "equal share of the CPU threads; with --launcher ray or slurm: at most N runs queued at once")
    p.add_argument("--launcher", choices=("local", "ray", "slurm"), default=None,
                   help="where the runs train: local processes (--parallel), Ray tasks (needs vae-explorer[ray]) or "
                        "Slurm jobs through submitit (needs vae-explorer[slurm]); default: one after another here")
    p.add_argument("--address", default=None, help="--launcher ray: the Ray cluster to use (ray://HOST:PORT, "
                                                    "HOST:PORT or auto; default: a local Ray instance)")
    p.add_argument("--cpus-per-run", type=float_in(0.01, 1024), default=None, metavar="C",
                   help="--launcher ray or slurm: CPUs each run asks for (default: 1)")
    p.add_argument("--gpus-per-run", type=float_in(0.0, 64), default=None, metavar="G",
                   help="--launcher ray or slurm: GPUs each run asks for (default: Ray 1 when the cluster has GPUs, "
                        "else 0; Slurm 0)")
    p.add_argument("--partition", default=None, help="--launcher slurm: the Slurm partition")
    p.add_argument("--time", default=None, metavar="DURATION",
                   help="--launcher slurm: each job's time limit, e.g. 90m, 2h or 01:30:00 (default: 1h)")
    p.add_argument("--slurm-local", action="store_true",
                   help="--launcher slurm: run the jobs with submitit's local executor (processes on this machine) "
                        "to try a submission where there is no Slurm")
    p.add_argument("--slurm-array", action="store_true",
                   help="--launcher slurm: submit the runs as one Slurm job array (one sbatch) instead of one job "
                        "per run")
    p.add_argument("--slurm-array-parallelism", type=int_in(1, 100_000), default=None, metavar="N",
                   help="--slurm-array: at most N of the array's runs at once (default: all of them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")

    # ---- search
    p = sub.add_parser("search", help="search settings (beta, latent size, width, learning rate, KL warm-up) that "
                                      "score best on a dataset, within a time budget (needs vae-explorer[search])",
                       description="An Optuna study over the VAE's beta, latent size, width, learning rate and KL "
                                   "warm-up on a dataset, starting from its preset. Each trial is an ordinary run "
                                   "folder DIR/trial-NNNN; trials whose validation curve falls below the median are "
                                   "pruned. The study lives in DIR/study.db (or --storage), so the same command "
                                   "continues it, and several machines can share one. Writes DIR/search-report.html.")
    p.add_argument("--dataset", default="digits", help="digits, mnist, fashion-mnist, cifar10 or folder:PATH "
                                                       "(default: digits)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the trials' run folders, the study and "
                                                               "the report")
    p.add_argument("--budget", default="10m", metavar="DURATION",
                   help="time for the whole search, e.g. 10m, 2h (default: 10m); a trial still running when it "
                        "ends is stopped")
    p.add_argument("--trials", type=int_in(1, 100_000), default=None, metavar="N",
                   help="stop after N trials of this launch (default: as many as the budget allows)")
    p.add_argument("--objective", default="elbo", metavar="NAME[,NAME]",
                   help="what the best trial has most of: elbo (validation ELBO), iwae (validation IWAE NLL), "
                        "frechet (Fréchet score of samples), accuracy (conditional accuracy of samples); two names "
                        "separated by a comma search their Pareto front (default: elbo)")
    p.add_argument("--epochs", type=int_in(1, 100_000), default=None,
                   help="epochs per trial (default: the dataset preset's)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="the VAE preset the trials start from (default: the dataset's own; a folder: digits)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="the study's database (e.g. postgresql://... shared by several machines; default: "
                        "sqlite:///DIR/study.db)")
    p.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="the search's seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or trial lines")
    return parser


# ------------------------------------------------------------------------------------------------ main
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
            raise ArgumentError(f"no command given; choose one of {', '.join(COMMANDS)} (or run `{PROG}` with no "
                                 "arguments to open the GUI)")
        module, function = _HANDLERS[args.command]
        return getattr(importlib.import_module(module), function)(args)
    except (ArgumentError, UserError) as e:
        fail(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        # Checking a path the user gave (exists(), is_dir()) already fails on a name over 255 bytes: their mistake.
        name = printable(str(e.filename or "a path"))
        fail(f"{name[:80]}{'...' if len(name) > 80 else ''}: a file or folder name is too long (at most 255 bytes "
             "each); choose a shorter one")
        return EXIT_USAGE




if __name__ == "__main__":
    sys.exit(main())
