"""The survey's remedies for blurry samples, each trained at equal CPU time, on digits and on 5,000 real MNIST digits.

    python bench/bench_variants.py [--digits-seconds 30] [--mnist-seconds 150] [--out /tmp/variants]

Every variant starts from the dataset's preset (`digits`, `mnist`) and changes only what makes it that variant. Equal
CPU time, with each run's learning-rate schedule complete: a short calibration run measures each variant's steps per
second, then the variant trains for `seconds * rate` steps (`train.max_steps`). "ex-post density" is the plain model
sampled from a Gaussian mixture per class fitted to its encoded training set instead of the prior (no extra training;
the fit's time is in its train-time column). All numbers are on the test split (digits: 360 images; MNIST: the 1,000
held-out real digits), judged by the per-dataset classifier (the Fréchet score is its features', not Inception's).
Prints one Markdown table per dataset and writes one sample grid per variant (OUT/<dataset>/<variant>.png).
Run it alone: it measures time.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_mnist import real_mnist_dataset_name

from core.config import Config, preset, with_overrides

# What makes each variant, as config deltas on the dataset's preset (section.field -> value), applied after FLAT:
# every variant but the hierarchical one is the plain flat-latent VAE plus one change (the mnist preset itself is
# hierarchical since it was tuned).
# The VAE-GAN and hierarchical settings are those of the digits-vaegan / digits-hvae presets (measured there); the
# discriminator joins after 30 % of the steps, as digits-vaegan's step 150 of ~500. On MNIST at 100 s the VAE-GAN
# loses to the plain VAE (Fréchet 98 vs 65); tried there too (2026-11-30): start at 50 % / 60 % of the steps, weight
# 0.3 / 0.1 / 0.05: Fréchet 88-96 vs 64, validation loss equal to the plain run's until the start, ~3 nats worse at
# the end, sharpness 0.24-0.26 vs 0.30.
FLAT: dict[str, object] = {"model.stochastic_layers": 1}
VARIANTS: dict[str, dict[str, object]] = {
    "plain VAE": {},
    "fft perceptual": {"model.perceptual": "fft", "model.perceptual_weight": 1.0},
    "VAE-GAN": {"model.adversarial_weight": 0.3, "model.adversarial_start": 0.3},
    "hierarchical (3 layers)": {"model.stochastic_layers": 3, "model.latent_dim": 16},
}
EX_POST = "plain + ex-post density"
COLUMNS = ("train s", "ELBO", "IWAE NLL", "SSIM", "cond. acc.", "Fréchet", "precision", "recall", "sharpness")


def apply(config: Config, delta: dict[str, object]) -> Config:
    sections = {"data": config.data, "model": config.model, "train": config.train}
    for key, value in delta.items():
        section, name = key.split(".")
        sections[section] = with_overrides(sections[section], **{name: value})
    return config.replace(**sections)


def train_for(config: Config, run_dir: Path, steps: int) -> float:
    """Train `steps` optimiser steps (the schedule ends there); the wall time."""
    from core.training.events import RunEnded
    from core.training.trainer import Trainer

    cfg = apply(config, {"train.max_steps": steps, "train.epochs": 100000, "train.early_stopping": 0,
                         "train.preview_every": 0})
    start = time.perf_counter()
    status = None
    for ev in Trainer(cfg, run_dir=run_dir).run():
        if isinstance(ev, RunEnded):
            status = ev.status
    if status != "completed":
        raise SystemExit(f"{run_dir.name}: training ended {status}")
    return time.perf_counter() - start


def steps_per_second(config: Config, run_dir: Path, steps: int = 40) -> float:
    """Steps per second of this variant (a short run; the first few steps' warm-up is not counted)."""
    from core.training.events import StepMetrics
    from core.training.trainer import Trainer

    cfg = apply(config, {"train.max_steps": steps, "train.epochs": 100000, "train.log_every": 1,
                         "train.preview_every": 0, "train.early_stopping": 0})
    marks = []
    for ev in Trainer(cfg, run_dir=run_dir).run():
        if isinstance(ev, StepMetrics):
            marks.append((ev.step, time.perf_counter()))
    (s0, t0), (s1, t1) = marks[len(marks) // 4], marks[-1]
    return (s1 - s0) / (t1 - t0)


def evaluate_run(run_dir: Path, *, with_density: bool) -> tuple[dict, dict | None, float]:
    from core.data.datasets import load_dataset
    from core.evaluation.evaluate import evaluate
    from core.experiments.runner import save_sample_grid
    from core.training.checkpoint import load_model

    loaded = load_model(run_dir / "checkpoints" / "last.safetensors")
    dataset = load_dataset(loaded.config.data)
    samplers = {"prior": None}
    fit_s = 0.0
    if with_density:
        from core.latent.density import fit_density

        start = time.perf_counter()
        density = fit_density(loaded.model, dataset.train)
        fit_s = time.perf_counter() - start
        samplers["density"] = density.sample
    result = evaluate(loaded, dataset, "test", iwae_k=64, n_per_class=100, fid="judge", latent_samplers=samplers)
    save_sample_grid(loaded.model, run_dir.parent / f"{run_dir.name}.png")
    density_result = None
    if with_density:
        density_result = {**result, **{k[len("density_"):]: v for k, v in result.items() if k.startswith("density_")}}
    return result, density_result, fit_s


def row(name: str, seconds: float, r: dict) -> list[str]:
    def num(key: str, fmt: str) -> str:
        v = r.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "—"

    return [name, f"{seconds:.0f}", num("elbo", ".1f"), num("iwae_nll", ".1f"), num("ssim", ".3f"),
            num("conditional_accuracy", ".3f"), num("fid_like", ".1f"), num("precision", ".2f"),
            num("recall", ".2f"), num("sharpness", ".2f")]


def bench_dataset(label: str, base: Config, seconds: float, out: Path, only: list[str] | None) -> None:
    rows = []
    for name, delta in VARIANTS.items():
        if only and name not in only:
            continue
        delta = {**FLAT, **delta}
        config = apply(base, {k: v for k, v in delta.items() if k != "model.adversarial_start"})
        slug = name.split(" (")[0].replace(" ", "-").lower()
        for folder in (out / label / f"calibrate-{slug}", out / label / slug):
            shutil.rmtree(folder, ignore_errors=True)   # a fresh run each time (a run folder would be resumed)
        rate = steps_per_second(config, out / label / f"calibrate-{slug}")
        steps = max(1, int(seconds * rate))
        if "model.adversarial_start" in delta:   # given as a share of the steps
            config = apply(config, {"model.adversarial_start": int(float(delta["model.adversarial_start"]) * steps)})
        train_s = train_for(config, out / label / slug, steps)
        print(f"{label} {name}: {rate:.1f} steps/s -> {steps} steps in {train_s:.0f} s", file=sys.stderr, flush=True)
        result, density_result, fit_s = evaluate_run(out / label / slug, with_density=(name == "plain VAE"))
        rows.append(row(name, train_s, result))
        if density_result is not None:
            rows.append(row(EX_POST, train_s + fit_s, density_result))
    print(f"\n**{label}** ({seconds:.0f} s of training per variant; test split)\n")
    print("| variant | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits-seconds", type=float, default=30.0)
    parser.add_argument("--mnist-seconds", type=float, default=150.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-variants"))
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = parser.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()] or None
    datasets = args.datasets.split(",")
    if "digits" in datasets:
        bench_dataset("digits", preset("digits"), args.digits_seconds, args.out, only)
    if "mnist" in datasets:
        mnist = preset("mnist")
        mnist = mnist.replace(data=with_overrides(mnist.data, name=real_mnist_dataset_name()))
        bench_dataset("mnist", mnist, args.mnist_seconds, args.out, only)


if __name__ == "__main__":
    main()
