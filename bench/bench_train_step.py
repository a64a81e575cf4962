"""Benchmark: the Trainer's images/s on a preset, this checkout against another copy of core/ (e.g. before a change),
alternated in fresh processes so that both meet the same machine load.

Issue 24 added models' own optimisers, the per-step gradient norm in the step records and `train.grad_skip`; this
measures what they cost. Each repeat runs both trees once per variant; the best of the repeats is kept (a shared
machine is noisy). Variants: the preset as it is, grad_clip 1.0, and (this tree only) grad_skip 1e9 (a threshold that
never skips: the cost of the check alone).

    git archive <commit> core | tar -x -C /tmp/before
    .venv/bin/python bench/bench_train_step.py --before /tmp/before [--preset digits] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> None:
    """Train once in this process (core imported from sys.path[0]) and print one JSON line."""
    import dataclasses

    import torch

    from core.config import preset
    from core.data.datasets import load_dataset
    from core.training.events import StepMetrics
    from core.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    base = preset(args.preset)
    train = dict(epochs=args.epochs, device="cpu", preview_every=0, log_every=5)
    train.update(json.loads(args.variant))
    model = base.model
    if args.preset.endswith("vaegan"):   # the discriminator from the first step, so that it is measured
        model = dataclasses.replace(model, adversarial_start=0)
    cfg = dataclasses.replace(base, model=model, train=dataclasses.replace(base.train, **train))
    ds = load_dataset(cfg.data)
    rates = []
    t0 = time.perf_counter()
    for ev in Trainer(cfg, dataset=ds).run():
        if isinstance(ev, StepMetrics):
            rates.append(ev.images_per_s)
    whole = len(ds.train) * args.epochs / (time.perf_counter() - t0)
    print(json.dumps({"steps": statistics.median(rates[1:] or rates), "whole": whole}))


def run(tree: Path, args: argparse.Namespace, variant: dict) -> dict:
    """One training in a fresh process that imports core/ from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, __file__, "--child", *rest(args, variant)], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def rest(args: argparse.Namespace, variant: dict) -> list[str]:
    return ["--preset", args.preset, "--epochs", str(args.epochs), "--threads", str(args.threads),
            "--variant", json.dumps(variant)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="a folder holding another copy of core/ to compare with")
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="preset,grad_clip 1,grad_skip 1e9", help="comma-separated, of those above")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--variant", default="{}")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    variants = {"preset": ({}, True), "grad_clip 1": ({"grad_clip": 1.0}, True),
                "grad_skip 1e9": ({"grad_skip": 1e9}, False)}
    variants = {k: v for k, v in variants.items() if k in args.variants.split(",")}
    trees = {"before": args.before, "after": HERE} if args.before else {"after": HERE}
    best: dict[tuple[str, str], dict] = {}
    for r in range(args.repeats):
        for vname, (variant, both) in variants.items():
            for tname, tree in trees.items():
                if tname == "before" and not both:
                    continue
                res = run(tree, args, variant)
                key = (vname, tname)
                prev = best.get(key)
                best[key] = {k: max(res[k], prev[k]) if prev else res[k] for k in res}
                print(f"repeat {r + 1} {vname:14s} {tname:6s} steps {res['steps']:8.1f} img/s  whole run "
                      f"{res['whole']:8.1f} img/s", flush=True)
    print(f"\n{args.preset}, {args.epochs} epochs, {args.threads} threads, best of {args.repeats}:")
    for (vname, tname), res in best.items():
        ratio = ""
        if tname == "after" and (vname, "before") in best:
            ratio = f"  after/before steps {res['steps'] / best[(vname, 'before')]['steps']:.3f}"
        elif tname == "after" and vname != "preset" and ("preset", "after") in best:
            ratio = f"  vs preset (after) {res['steps'] / best[('preset', 'after')]['steps']:.3f}"
        print(f"  {vname:14s} {tname:6s} steps {res['steps']:8.1f} img/s  whole {res['whole']:8.1f} img/s{ratio}")


if __name__ == "__main__":
    main()
