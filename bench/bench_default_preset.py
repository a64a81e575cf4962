"""Benchmark: the `digits` preset through the Trainer against the floor, a plain 60-line CVAE, on the same data.

Targets (issue 3): the preset trains in <= 30 s on a 2-core CPU, conditional accuracy >= 99 %, test reconstruction
SSIM >= 0.93, and a better test ELBO than the plain CVAE (three stride-2 convs each way, latent 16, BCE, Adam 1e-3,
batch 128, 20 epochs). Both are judged by the same classifier (core.evaluation) on the same test split.

    .venv/bin/python bench/bench_default_preset.py [--threads 2] [--preset digits] [--skip-floor]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import preset
from core.data.datasets import load_dataset
from core.evaluation.evaluate import conditional_accuracy, evaluate
from core.evaluation.image_quality import ssim_psnr
from core.evaluation.judge import get_classifier
from core.images import as_float
from core.training.checkpoint import load_model
from core.training.events import RunEnded
from core.training.trainer import Trainer


# ------------------------------------------------------------------------------------------ the floor: a plain CVAE
class PlainCVAE(nn.Module):
    """Three stride-2 convs each way, label one-hot into encoder and decoder, latent 16, BCE + KL."""

    def __init__(self, channels: int, size: int, num_classes: int, latent: int = 16) -> None:
        super().__init__()
        self.num_classes, self.latent, self.s = num_classes, latent, size // 8
        self.enc = nn.Sequential(nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                 nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(), nn.Flatten())
        flat = 128 * self.s * self.s
        self.mu = nn.Linear(flat + num_classes, latent)
        self.logvar = nn.Linear(flat + num_classes, latent)
        self.fc = nn.Linear(latent + num_classes, flat)
        self.dec = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, channels, 4, 2, 1))

    def encode(self, x, y):
        h = torch.cat([self.enc(x), F.one_hot(y, self.num_classes).float()], 1)
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z, y):
        h = self.fc(torch.cat([z, F.one_hot(y, self.num_classes).float()], 1)).view(-1, 128, self.s, self.s)
        return self.dec(h)

    def loss(self, x, y):
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = F.binary_cross_entropy_with_logits(self.decode_logits(z, y), x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return (recon + kl).mean(), recon.mean(), kl.mean()

    @torch.no_grad()
    def reconstruct(self, x, y):
        return torch.sigmoid(self.decode_logits(self.encode(x, y)[0], y))

    @torch.no_grad()
    def sample(self, labels, *, generator=None):
        z = torch.randn(len(labels), self.latent, generator=generator)
        return torch.sigmoid(self.decode_logits(z, labels))


def train_floor(ds, epochs=20, batch=128, lr=1e-3, seed=0):
    torch.manual_seed(seed)
    m = ds.meta
    model = PlainCVAE(m.channels, m.image_size, m.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for xb, yb in ds.train.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(epoch)):
            loss = model.loss(as_float(xb), yb)[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), time.perf_counter() - t0


def floor_metrics(model, ds, judge):
    x, y = as_float(ds.test.images), ds.test.labels
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        total, recon, kl = model.loss(x, y)
    ssim, psnr = ssim_psnr(model.reconstruct(x, y), x)
    acc = conditional_accuracy(model, judge, 100, torch.Generator().manual_seed(0))
    return {"elbo": -total.item(), "recon": recon.item(), "kl": kl.item(), "ssim": ssim, "psnr": psnr,
            "conditional_accuracy": acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="digits")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    ap.add_argument("--skip-floor", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    print(f"preset {args.preset}: {cfg.to_dict()['model']} | {cfg.to_dict()['train']}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ds = load_dataset(cfg.data)
    print(f"data: {ds.meta.name} {ds.meta.image_size}px, train {len(ds.train)}, val {len(ds.val)}, test {len(ds.test)}")
    judge = get_classifier(ds.meta, ds)
    print(f"judge classifier test accuracy on real digits: {judge.test_accuracy:.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        end = None
        for ev in Trainer(cfg, run_dir=tmp, dataset=ds).run():
            if isinstance(ev, RunEnded):
                end = ev
        seconds = time.perf_counter() - t0
        print(f"ours: {end.status} after {end.step} steps, {end.epoch} epochs in {seconds:.1f} s (wall, incl. "
              "validation, previews, checkpoints)")
        loaded = load_model(Path(tmp) / "checkpoints" / "last.safetensors")
        ours = evaluate(loaded, ds, "test", iwae_k=0, classifier=judge)
    rows = [("ours (digits preset)", seconds, ours)]
    if not args.skip_floor:
        model, floor_s = train_floor(ds)
        rows.append(("floor (plain CVAE)", floor_s, floor_metrics(model, ds, judge)))
    print(f"\n{'model':22s} {'train s':>8s} {'test ELBO':>10s} {'recon':>8s} {'KL':>6s} {'SSIM':>6s} {'PSNR':>6s} "
          f"{'cond.acc':>8s}")
    for name, s, r in rows:
        print(f"{name:22s} {s:8.1f} {r['elbo']:10.2f} {r['recon']:8.2f} {r['kl']:6.2f} {r['ssim']:6.3f} "
              f"{r['psnr']:6.2f} {r['conditional_accuracy']:8.4f}")
    print("\ntargets: train <= 30 s, SSIM >= 0.93, cond. acc >= 0.99, ELBO above the floor's")


if __name__ == "__main__":
    main()
