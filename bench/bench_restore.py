"""Restoration benchmark: PSNR / SSIM / seconds of every restorer on digits test images.

Default: Gaussian noise sigma = 0.3 on 100 test images with the bundled VAE and diffusion models (the issue's
target: the best learned restorer should beat the best classical baseline). `--all` runs every corruption at its
default strength. Prints a table and the verdict; `--csv/--json` save the rows.

    python bench/bench_restore.py [--n 100] [--all] [--vae PATH] [--diffusion PATH] [--samples 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import DataConfig
from core.data.datasets import load_dataset
from core.paths import bundled_model
from core.restoration.benchmark import batch_evaluate, format_table, write_csv, write_json
from core.restoration.corruptions import CORRUPTIONS
from core.training.checkpoint import load_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="test images")
    ap.add_argument("--sigma", type=float, default=0.3, help="Gaussian noise sigma (without --all)")
    ap.add_argument("--all", action="store_true", help="every corruption at its default strength")
    ap.add_argument("--vae", default=None, help="VAE checkpoint (default: the bundled one; none = leave out)")
    ap.add_argument("--diffusion", default=None, help="diffusion checkpoint (default: the bundled one)")
    ap.add_argument("--samples", type=int, default=4, help="diffusion restorations averaged per image")
    ap.add_argument("--refine-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    # "none" leaves a model out
    vae_path = None if args.vae == "none" else (args.vae or bundled_model("vae"))
    dif_path = None if args.diffusion == "none" else (args.diffusion or bundled_model("diffusion"))
    vae = load_model(vae_path) if vae_path else None
    diffusion = load_model(dif_path) if dif_path else None
    print(f"VAE: {vae_path or 'none'}\ndiffusion: {dif_path or 'none'}")
    ds = load_dataset(DataConfig("digits", image_size=16))
    corruptions = list(CORRUPTIONS) if args.all else ["gaussian"]
    strengths = None if args.all else [args.sigma]
    t0 = time.perf_counter()
    rows = batch_evaluate(vae and vae.model, diffusion and diffusion.model, ds, corruptions=corruptions,
                          strengths=strengths, n_images=args.n,
                          seed=args.seed, refine_steps=args.refine_steps, diffusion_samples=args.samples)
    print(format_table(rows))
    print(f"({time.perf_counter() - t0:.0f} s in all, {args.n} images)")
    for c in corruptions:
        part = [r for r in rows if r["corruption"] == c]
        learned = [r for r in part if r["restorer"] in ("vae", "vae-refined", "diffusion")]
        classical = [r for r in part if r["restorer"].startswith("classical")]
        if learned and classical:
            bl = max(learned, key=lambda r: r["psnr_mean"])
            bc = max(classical, key=lambda r: r["psnr_mean"])
            verdict = "beats" if bl["psnr_mean"] > bc["psnr_mean"] else "does NOT beat"
            print(f"{c}: best learned {bl['restorer']} {bl['psnr_mean']:.2f} dB / SSIM {bl['ssim_mean']:.3f} "
                  f"{verdict} best classical {bc['restorer']} {bc['psnr_mean']:.2f} dB / SSIM {bc['ssim_mean']:.3f}")
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
