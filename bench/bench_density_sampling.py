"""Prior vs ex-post density sampling (per-class GMM on the encoded training set): the sample metrics of each.

    python bench/bench_density_sampling.py [--checkpoint resources/digits-vae.safetensors] [--seeds 3]
                                           [--per-class 100] [--components 1,2,4,8] [--covariances full,diag]
                                           [--layers auto|top,all]

For the checkpoint's own training data: fits the density for every (components, covariance) pair (timed), then
judges `--per-class` samples per class from the prior and from each density on the test split, over `--seeds`
seeds: conditional accuracy, the Fréchet score in the judge's features, precision and recall (k = 3) and sharpness.
Prints mean ± standard deviation over the seeds. This is what chose core.latent.density's defaults. For a
hierarchical VAE, `--layers top,all` compares the mixture on the top layer only with one on the whole flat code
(the default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from core.data.datasets import load_dataset  # noqa: E402
from core.evaluation.evaluate import judge_for, source_metrics  # noqa: E402
from core.latent.density import fit_density  # noqa: E402
from core.training.checkpoint import load_model  # noqa: E402

METRICS = ("conditional_accuracy", "fid_like", "precision", "recall", "sharpness")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "resources" / "digits-vae.safetensors"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--components", default="1,2,4,8")
    parser.add_argument("--covariances", default="full,diag")
    parser.add_argument("--layers", default="auto", help="auto (the default fit), or top,all (hierarchical VAEs)")
    args = parser.parse_args()
    loaded = load_model(args.checkpoint)
    dataset = load_dataset(loaded.config.data)
    judge = judge_for(loaded, dataset)
    model, classes = loaded.model, max(loaded.model.num_classes, 1)
    print(f"{Path(args.checkpoint).name}: {loaded.meta.name}, latent {model.latent_dim}, {len(dataset.train)} "
          f"training / {len(dataset.test)} test images; {args.per_class} samples per class, {args.seeds} seeds")
    sources: list[tuple[str, float, object]] = [("prior N(0, I)", 0.0, None)]
    layers = {"auto": False, "top": True, "all": False}
    for covariance in args.covariances.split(","):
        for k in (int(c) for c in args.components.split(",")):
            for layer in args.layers.split(","):
                started = time.perf_counter()
                density = fit_density(model, dataset.train, components=k, covariance=covariance,
                                      top_layer=layers[layer])
                name = f"GMM {k} {covariance}" + ("" if layer == "auto" else f" {layer}")
                sources.append((name, time.perf_counter() - started, density.sample))
    header = f"{'source':<20} {'fit s':>6}" + "".join(f" {m:>22}" for m in METRICS)
    print(header)
    print("-" * len(header))
    for name, fit_s, sampler in sources:
        runs = [source_metrics(model, judge, dataset.test.images, classes, args.per_class, seed=seed,
                               latent_sampler=sampler) for seed in range(args.seeds)]
        cells = []
        for m in METRICS:
            values = [r[m] for r in runs if m in r]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):>13.4f} ± {sd:<6.4f}" if values else f"{'—':>22}")
        print(f"{name:<20} {fit_s:>6.2f}" + "".join(f" {c:>22}" for c in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
