"""Diffusion sampling benchmark: 100 digits (10 per class) from the bundled diffusion model with fast samplers
(DPM-Solver++ and DDIM, 20 steps) against the 1000-step ancestral DDPM chain: seconds, speed-up and conditional
accuracy (the share a classifier trained on the real digits, `core.evaluation.judge.get_classifier`, assigns to the
requested
class). Target: 20-step DPM-Solver++ at least 40x faster than 1000-step DDPM, accuracy within 3 points.

    python bench/bench_diffusion.py [--model PATH] [--per-class 10] [--guidance G] [--skip-ddpm]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from core.config import DataConfig
from core.data.datasets import load_dataset
from core.evaluation.judge import get_classifier
from core.paths import bundled_model
from core.training.checkpoint import load_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="diffusion checkpoint (default: the bundled one)")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--guidance", type=float, default=None, help="default: the model's config")
    ap.add_argument("--skip-ddpm", action="store_true", help="leave out the slow 1000-step reference")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = args.model or bundled_model("diffusion")
    if path is None:
        print("no diffusion model: run `make default-model` or pass --model")
        return 1
    loaded = load_model(path)
    model = loaded.model
    ds = load_dataset(loaded.config.data if loaded.config.data.name == "digits" else DataConfig())
    clf = get_classifier(ds.meta, ds)
    print(f"model {path} (step {loaded.step}); classifier test accuracy on real digits {clf.test_accuracy:.3f}; "
          f"torch threads {torch.get_num_threads()}")
    labels = torch.arange(ds.meta.num_classes).repeat_interleave(args.per_class)
    runs = [("dpm++", 20), ("dpm++", 10), ("ddim", 20), ("ddim", 50)]
    if not args.skip_ddpm:
        runs.append(("ddpm", model.cfg.timesteps))
    results = {}
    for sampler, steps in runs:
        g = torch.Generator().manual_seed(args.seed)
        t0 = time.perf_counter()
        x = model.sample(labels, steps=steps, sampler=sampler, guidance=args.guidance, generator=g)
        seconds = time.perf_counter() - t0
        acc = float((clf.predict(x) == labels).float().mean())
        results[(sampler, steps)] = (seconds, acc)
        print(f"{sampler:>6} {steps:>5} steps: {seconds:8.2f} s for {len(labels)} images, "
              f"conditional accuracy {acc * 100:5.1f}%", flush=True)
    if not args.skip_ddpm:
        ref_s, ref_acc = results[("ddpm", model.cfg.timesteps)]
        fast_s, fast_acc = results[("dpm++", 20)]
        speed = ref_s / fast_s
        gap = (ref_acc - fast_acc) * 100
        ok = speed >= 40 and gap <= 3
        print(f"DPM-Solver++ 20 vs DDPM {model.cfg.timesteps}: {speed:.1f}x faster, accuracy gap {gap:+.1f} points "
              f"-> target {'MET' if ok else 'NOT met'} (>= 40x, <= 3 points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
