"""Where z comes from: the VAE's prior N(0, I), the per-class Gaussian mixture, and the latent diffusion prior, side by
side on one VAE (issue 24).

    python bench/bench_priors.py [--checkpoint resources/digits-vae.safetensors] [--seeds 2] [--per-class 100]
                                 [--prior-steps 2000] [--width 256] [--blocks 3] [--sample-steps 25]
                                 [--guidance 0.7,1] [--stochastic no,yes] [--match no,yes] [--temperature 1,1.1]
                                 [--set ema_decay=0.999] [--seed0 0] [--no-whiten]
                                 [--layers all,top] [--device cpu] [--json FILE] [--grids DIR]
    python bench/bench_priors.py --mnist [--epochs N] [--train-seed S] [--keep DIR] ...  # train `mnist` first

For the checkpoint's own data: encodes the training split once, then fits each sampler (timed, from scratch: no disk
cache of the fit; the encoding is read once beforehand and left out of the times; CPU seconds, so a paused run
still times right), draws `--per-class` samples per
class for each of `--seeds` seeds and judges them on the test split:
Fréchet score in the judge's features (lower is better), precision and recall (k = 3, judge features), conditional
accuracy, sharpness, the hole score (share of sampled z whose nearest test latent of their class is farther than that
latent's own 5th neighbour: core/evaluation/holes.py), fit seconds and samples per second (z drawn and decoded, batches
of 1,000). Prints mean ± standard deviation over the seeds, then each row's paired difference to the mixture on the
same seeds (mean ± standard error); `--seed0 N` starts the seeds at N (fresh seeds to confirm a row chosen on others);
`--grids DIR` writes one 10 x 10 sample grid per sampler.
`--mnist` trains the `mnist` preset on the 5,000 real MNIST digits of bench/real_mnist.py (its PNG folder must exist:
run that script once) and benches that model; `--keep DIR` keeps its run folder, to bench it again with
`--checkpoint DIR/checkpoints/last.safetensors`. Lists of guidance, sampler and temperature sample one fitted diffusion
prior each way (a row each); `--set FIELD=VALUE` changes any other DiffusionPriorSettings field.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

from core.data.datasets import load_dataset  # noqa: E402
from core.evaluation.evaluate import judge_for, source_metrics  # noqa: E402
from core.latent import diffusion_prior as dp  # noqa: E402
from core.latent.density import fit_density  # noqa: E402
from core.latent.encoding import encode_split  # noqa: E402
from core.latent.map_data import cached_encoding  # noqa: E402
from core.training.checkpoint import LoadedModel, load_model  # noqa: E402

METRICS = ("fid_like", "precision", "recall", "conditional_accuracy", "sharpness", "hole_score")


def train_mnist(epochs: int, device: str, out: Path, seed: int = 0) -> tuple[LoadedModel, float]:
    """The `mnist` preset trained on the real digits; its last checkpoint and the training CPU seconds."""
    from real_mnist import real_mnist_dataset_name

    from core.config import preset, with_overrides
    from core.training.trainer import Trainer

    cfg = preset("mnist")
    train = {"device": device, "seed": seed} | ({"epochs": epochs} if epochs else {})
    cfg = cfg.replace(data=with_overrides(cfg.data, name=real_mnist_dataset_name()),
                      train=with_overrides(cfg.train, **{k: str(v) for k, v in train.items()}))
    started = time.process_time()
    for _event in Trainer(cfg, run_dir=out).run():
        pass
    return load_model(out / "checkpoints" / "last.safetensors", device), time.process_time() - started


def samples_per_second(model, sampler, n: int = 1000) -> float:
    labels = torch.arange(n) % max(model.num_classes, 1)
    device = next(model.parameters()).device
    started = time.perf_counter()
    with torch.no_grad():
        z = sampler(labels, torch.Generator().manual_seed(0)) if sampler is not None else None
        kw = {} if z is None else {"z": z}
        model.sample(labels.to(device), generator=torch.Generator(device=device).manual_seed(0) if z is None
                     else None, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return n / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "resources" / "digits-vae.safetensors"))
    parser.add_argument("--mnist", action="store_true", help="train the mnist preset on real MNIST and bench it")
    parser.add_argument("--epochs", type=int, default=0, help="with --mnist: epochs (0: the preset's)")
    parser.add_argument("--train-seed", type=int, default=0, help="with --mnist: the training's seed (another model)")
    parser.add_argument("--keep", type=Path, help="with --mnist: train into this run folder and keep it (bench it "
                                                  "again later with --checkpoint DIR/checkpoints/last.safetensors)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--prior-steps", type=int, default=dp.DiffusionPriorSettings.train_steps)
    parser.add_argument("--width", type=int, default=dp.DiffusionPriorSettings.width)
    parser.add_argument("--blocks", type=int, default=dp.DiffusionPriorSettings.blocks)
    parser.add_argument("--sample-steps", default=str(dp.DiffusionPriorSettings.sample_steps),
                        help="DPM-Solver++ steps; a comma list samples the same fit with each (one row each)")
    parser.add_argument("--guidance", default="1", help="classifier-free guidance; a comma list samples the same fit "
                                                            "at each (one row each)")
    parser.add_argument("--stochastic", default="no", help="no, yes or no,yes: the diffusion prior samples with "
                                                           "SDE-DPM-Solver++ (one row each)")
    parser.add_argument("--match", default="no", help="no, yes or no,yes: the diffusion prior's draws scaled to the "
                                                      "data's class spread (match_spread; one row each)")
    parser.add_argument("--seed0", type=int, default=0, help="the first sample seed (seeds seed0 .. seed0 + seeds - 1: "
                                                             "fresh seeds to confirm a row chosen on others)")
    parser.add_argument("--temperature", default="1", help="scale of the diffusion prior's starting noise; a comma "
                                                           "list gives one row each")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="another DiffusionPriorSettings field (ema_decay=0.999, lr=5e-4, ...); repeatable")
    parser.add_argument("--layers", default="all", help="a hierarchical VAE: all (the whole code), top, or all,top")
    parser.add_argument("--posterior-samples", action="store_true",
                        help="the diffusion prior fits draws z ~ q(z|x) instead of the posterior means")
    parser.add_argument("--no-whiten", action="store_true", help="the diffusion prior standardises each dimension "
                                                                  "instead of whitening the latents (PCA)")
    parser.add_argument("--sources", default="prior,density,diffusion",
                        help="which of prior,density,diffusion,memory (memory: the training latents replayed, the "
                             "score of a prior that memorised them)")
    parser.add_argument("--augment", type=int, default=0,
                        help="fit the GMM and the diffusion prior to the training images plus this many randomly "
                             "shifted, turned and scaled copies of each (torchvision RandomAffine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--grids", type=Path, help="write a 10 x 10 PNG sample grid per sampler into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        train_s = None
        if args.mnist:
            loaded, train_s = train_mnist(args.epochs, args.device, args.keep or Path(scratch), args.train_seed)
        else:
            loaded = load_model(args.checkpoint, args.device)
        return bench(loaded, args, train_s)


def bench(loaded: LoadedModel, args, train_s: float | None) -> int:
    model = loaded.model.eval()
    dataset = load_dataset(loaded.config.data, args.device)
    judge = judge_for(loaded, dataset)
    classes = max(model.num_classes, 1)
    print(f"{loaded.meta.name}: {loaded.config.model.stochastic_layers}-layer VAE, latent {model.latent_dim}, "
          f"{len(dataset.train)} training / {len(dataset.test)} test images; {args.per_class} samples per class, "
          f"{args.seeds} seeds, device {args.device}" + (f"; trained in {train_s:.0f} CPU s" if train_s else ""))
    train = cached_encoding(loaded, "train", dataset.train)   # encoded once: the fit times below leave the encoding out
    test = encode_split(model, dataset.test)
    fit_split = augmented(dataset.train, args.augment) if args.augment else dataset.train
    if args.augment:
        print(f"fitted to {len(fit_split)} images: the training split and {args.augment} affine copies of each")
    data_latents = (test.mu, test.labels if model.num_classes else None)
    wanted = set(args.sources.split(","))
    sources: list[tuple[str, float, object]] = [("prior N(0, I)", 0.0, None)] if "prior" in wanted else []
    layers = [name == "top" for name in args.layers.split(",")]
    for top in layers:
        suffix = " (top layer)" if top else ""
        started = time.process_time()
        if "density" in wanted:
            density = fit_density(model, fit_split, top_layer=top, loaded=loaded)
            sources.append(("GMM 4 full" + suffix, time.process_time() - started, density.sample))
        if "memory" in wanted:   # a reference: a prior that replays the training latents (a perfect memoriser)
            sources.append(("training latents" + suffix, 0.0, functools.partial(
                replay_training, train.mu, train.labels, dp._top_layer(model, top)[1])))
        if "memory-mix" in wanted:   # the same, each z between a training latent and one of its 5 class neighbours
            fitted = dp._top_layer(model, top)[1]
            sources.append(("training latents mixed" + suffix, 0.0, functools.partial(
                replay_training, train.mu, train.labels, fitted, neighbours=neighbours(train.mu[:, :fitted],
                                                                                         train.labels, 5))))
        if "diffusion" not in wanted:
            continue
        settings = dp.DiffusionPriorSettings(width=args.width, blocks=args.blocks, train_steps=args.prior_steps,
                                             sample_steps=int(args.sample_steps.split(',')[0]), top_layer=top,
                                             posterior_samples=args.posterior_samples, whiten=not args.no_whiten,
                                             **settings_overrides(args.set))
        started = time.process_time()
        prior = dp.fit_diffusion_prior(model, fit_split, settings=settings, loaded=loaded, disk_cache=False)
        fit_s = time.process_time() - started
        first_steps = int(args.sample_steps.split(",")[0])
        for guidance, stochastic, matched, temperature, steps in itertools.product(
                map(float, args.guidance.split(",")), [s.strip() == "yes" for s in args.stochastic.split(",")],
                [s.strip() == "yes" for s in args.match.split(",")],
                map(float, args.temperature.split(",")), map(int, args.sample_steps.split(","))):
            variant = prior.with_sampling(guidance=guidance, stochastic=stochastic, sample_steps=steps,
                                          match_spread=matched)
            tags = "".join([f" g{guidance:g}" if guidance != 1 else "", " sde" if stochastic else "",
                            " matched" if matched else "",
                            f" T{temperature:g}" if temperature != 1 else "",
                            f" {steps} steps" if steps != first_steps else ""])
            sources.append(("diffusion prior" + suffix + tags, fit_s,
                            functools.partial(variant.sample, temperature=temperature)))
    header = f"{'source':<34} {'fit CPU s':>9} {'samples/s':>9}" + "".join(f" {m:>21}" for m in METRICS)
    print(header)
    print("-" * len(header))
    rows, per_seed = [], {}
    for name, fit_s, sampler in sources:
        runs = [source_metrics(model, judge, dataset.test.images, classes, args.per_class, seed=seed,
                               latent_sampler=sampler, data_latents=data_latents)
                for seed in range(args.seed0, args.seed0 + args.seeds)]
        rate = samples_per_second(model, sampler)
        row = {"source": name, "fit_s": fit_s, "samples_per_s": rate}
        cells = []
        for m in METRICS:
            values = [r[m] for r in runs if m in r]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            row[m], row[m + "_sd"] = (statistics.mean(values), sd) if values else (None, None)
            cells.append(f"{statistics.mean(values):>12.4f} ± {sd:<6.4f}" if values else f"{'—':>21}")
        rows.append(row)
        per_seed[name] = runs
        print(f"{name:<34} {fit_s:>9.1f} {rate:>9.0f}" + "".join(f" {c:>21}" for c in cells), flush=True)
        if args.grids:
            write_grid(model, sampler, args.grids / f"{loaded.meta.name.split('/')[-1]}-{slug(name)}.png")
    differences = paired_differences(per_seed)
    if args.json:
        args.json.write_text(json.dumps({"dataset": loaded.meta.name, "train_s": train_s, "rows": rows,
                                         "paired_differences": differences}, indent=2))
    return 0


PAIRED = ("fid_like", "precision", "recall", "conditional_accuracy")


def paired_differences(per_seed: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """Each row minus the (first) mixture row on the same seed, mean ± standard error over the seeds, printed:
    whether a source beats the mixture is read from these, not from two rows' means and spreads (the seeds share
    the test set and the judge, so the differences vary less than the rows do). {row: {metric: [mean, s.e.]}}."""
    reference = next((name for name in per_seed if name.startswith("GMM")), None)
    seeds = len(per_seed[reference]) if reference else 0
    if reference is None or seeds < 2:
        return {}
    print(f"\npaired differences to '{reference}' over {seeds} seeds (mean ± standard error; Fréchet: lower is "
          "better, the others higher):")
    out = {}
    for name, runs in per_seed.items():
        if name == reference:
            continue
        out[name] = {}
        for m in PAIRED:
            d = [r[m] - g[m] for r, g in zip(runs, per_seed[reference], strict=True) if m in r and m in g]
            if len(d) > 1:
                out[name][m] = [statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5]
        print(f"  {name:<40}" + "".join(f" {m[:9]} {v[0]:+.4f} ± {v[1]:.4f}" for m, v in out[name].items()))
    return out


def augmented(split, copies: int):
    """The split followed by `copies` random affine copies of each image (seeded)."""
    from torchvision.transforms import v2

    from core.data.datasets import Split

    torch.manual_seed(0)
    affine = v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), shear=8)
    images = [split.images] + [torch.stack([affine(im) for im in split.images]) for _ in range(copies)]
    return Split(torch.cat(images), split.labels.repeat(copies + 1))


def neighbours(mu, labels, k: int):
    """(N, k) indices of each latent's k nearest neighbours of its own class (standardised coordinates)."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    x = (mu - mu.mean(0)) / (mu.std(0) + 1e-6)
    out = np.zeros((len(mu), k), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.nonzero(labels == c)[0]
        out[rows] = rows[NearestNeighbors(n_neighbors=k).fit(x[rows]).kneighbors()[1]]
    return torch.from_numpy(out)


def replay_training(mu, labels, fitted: int, want: torch.Tensor, generator: torch.Generator | None = None,
                    neighbours: torch.Tensor | None = None):
    """z for labels `want`: a random training image's posterior mean of that class (its first `fitted` columns; the
    rest from N(0, I), as the other samplers of a top layer)."""
    want = torch.as_tensor(want).reshape(-1)
    z = torch.randn(len(want), mu.shape[1], generator=generator)
    mu, labels = torch.as_tensor(mu), torch.as_tensor(labels)
    for c in want.unique():
        pool = torch.nonzero(labels == c).reshape(-1)
        rows = torch.nonzero(want == c).reshape(-1)
        pick = pool[torch.randint(len(pool), (len(rows),), generator=generator)]
        z[rows, :fitted] = mu[pick, :fitted].float()
        if neighbours is not None:   # a uniform point on the segment to one of its neighbours
            other = neighbours[pick, torch.randint(neighbours.shape[1], (len(rows),), generator=generator)]
            t = torch.rand(len(rows), 1, generator=generator)
            z[rows, :fitted] = (1 - t) * mu[pick, :fitted].float() + t * mu[other, :fitted].float()
    return z


def settings_overrides(pairs: list[str]) -> dict[str, object]:
    """--set FIELD=VALUE pairs as DiffusionPriorSettings keyword arguments, typed like the field's default."""
    defaults = dp.DiffusionPriorSettings()
    out: dict[str, object] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(defaults, name):
            raise SystemExit(f"--set {pair}: DiffusionPriorSettings has no field {name!r}")
        kind = type(getattr(defaults, name))
        out[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def write_grid(model, sampler, path: Path) -> None:
    from core.images import image_grid, save_png, to_uint8

    path.parent.mkdir(parents=True, exist_ok=True)
    labels = torch.arange(max(model.num_classes, 1)).repeat_interleave(10)
    gen = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    with torch.no_grad():
        kw = {} if sampler is None else {"z": sampler(labels, gen)}
        images = model.sample(labels.to(device), generator=None if kw else gen, **kw)
    save_png(image_grid(to_uint8(images.cpu()), 10), str(path), scale=2)


if __name__ == "__main__":
    sys.exit(main())
