"""Benchmark: images/s of the Trainer against a minimal plain-PyTorch loop (same model, data, batch size), one run.

Target (issue 3): Trainer / plain >= 0.95 on CPU (and on GPU when one is lent). Two ratios are printed:
- steps only: the Trainer's own StepMetrics rate (median) against the plain loop's rate;
- whole run: wall time of `epochs` epochs including the Trainer's validation, previews and (no) checkpoints.
The two are alternated `--repeats` times and the best of each is kept, which tames a noisy shared machine.

    .venv/bin/python bench/bench_trainer_overhead.py [--epochs 3] [--repeats 2] [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import preset
from core.data.datasets import load_dataset
from core.device import resolve_device
from core.images import as_float
from core.models import build_model
from core.training.events import StepMetrics
from core.training.trainer import Trainer, batch_order_generator


def plain_loop(cfg, ds, device) -> float:
    """The minimal loop: no metrics, no checks, no validation. Returns images/s."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, ds.meta).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    train = ds.train.to(device)
    n = 0
    t0 = time.perf_counter()
    for epoch in range(1, cfg.train.epochs + 1):
        for xb, yb in train.batches(cfg.train.batch_size, shuffle=True, generator=batch_order_generator(0, epoch)):
            loss = model.loss(as_float(xb), yb)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(xb)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def trainer_run(cfg, ds) -> tuple[float, float]:
    """(median StepMetrics images/s, whole-run images/s including validation)."""
    rates = []
    t0 = time.perf_counter()
    n = 0
    trainer = Trainer(cfg, dataset=ds)
    for ev in trainer.run():
        if isinstance(ev, StepMetrics):
            rates.append(ev.images_per_s)
    n = len(trainer.train_split) * cfg.train.epochs
    return statistics.median(rates[1:] or rates), n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--keep-ema", action="store_true",
                    help="keep the preset's EMA (a feature the plain loop lacks; off by default for a like-for-like "
                         "comparison)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = preset(args.preset)
    cfg = dataclasses.replace(base, train=dataclasses.replace(
        base.train, epochs=args.epochs, device=args.device, preview_every=0,
        ema_decay=base.train.ema_decay if args.keep_ema else 0.0))
    device = resolve_device(args.device)
    ds = load_dataset(cfg.data, device)
    print(f"{args.preset}: batch {cfg.train.batch_size}, {args.epochs} epochs of {len(ds.train)} images on {device}, "
          f"{torch.get_num_threads()} threads, EMA {cfg.train.ema_decay or 'off'}")
    plain, steps, whole = [], [], []
    for r in range(args.repeats):
        plain.append(plain_loop(cfg, ds, device))
        s, w = trainer_run(cfg, ds)
        steps.append(s)
        whole.append(w)
        print(f"repeat {r + 1}: plain {plain[-1]:8.1f} img/s | trainer steps {s:8.1f} img/s, whole run {w:8.1f} img/s")
    p = max(plain)
    print(f"\nbest plain loop      {p:8.1f} img/s")
    print(f"trainer, steps only  {max(steps):8.1f} img/s  ratio {max(steps) / p:.3f}")
    print(f"trainer, whole run   {max(whole):8.1f} img/s  ratio {max(whole) / p:.3f}  (incl. validation each epoch)")
    print("target: ratio >= 0.95")


if __name__ == "__main__":
    main()
