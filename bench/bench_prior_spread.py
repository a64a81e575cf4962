"""How widely each source of z spreads in a hierarchical VAE's top layer, against the data (issue 24's recall question).

    python bench/bench_prior_spread.py CHECKPOINT [--prior-steps 2000]

Whitens the top layer with the training latents' PCA, then prints for the training and test latents, the per-class
GMM and the diffusion prior (DPM-Solver++ 25 and 100 steps), 100 samples per class: the within-class variance (trace
of each class's covariance, averaged over classes), the mean distance to the class centroid, and the median distance
from a test latent to its nearest point of the same class in that set (how closely the set covers held-out latents).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from core.data.datasets import load_dataset  # noqa: E402
from core.latent import diffusion_prior as dp  # noqa: E402
from core.latent.density import fit_density  # noqa: E402
from core.latent.encoding import encode_split  # noqa: E402
from core.latent.map_data import cached_encoding  # noqa: E402
from core.training.checkpoint import load_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--prior-steps", type=int, default=dp.DiffusionPriorSettings.train_steps)
    args = parser.parse_args()
    loaded = load_model(args.checkpoint, "cpu")
    model = loaded.model.eval()
    dataset = load_dataset(loaded.config.data, "cpu")
    train, test = cached_encoding(loaded, "train", dataset.train), encode_split(model, dataset.test)
    fitted = dp._top_layer(model, True)[1]
    mean = train.mu[:, :fitted].mean(0)
    to_white, _ = dp.whitening(train.mu[:, :fitted] - mean, None, True)

    def white(z):
        return (np.asarray(z)[:, :fitted] - mean) @ to_white

    labels = torch.arange(max(model.num_classes, 1)).repeat_interleave(100)
    gmm = fit_density(model, dataset.train, top_layer=True, loaded=loaded)
    prior = dp.fit_diffusion_prior(model, dataset.train, loaded=loaded, disk_cache=False,
                                   settings=dp.DiffusionPriorSettings(top_layer=True, train_steps=args.prior_steps))
    sets = {"train": (white(train.mu), train.labels), "test": (white(test.mu), test.labels),
            "GMM": (white(gmm.sample(labels, torch.Generator().manual_seed(0))), labels.numpy())}
    for steps in (25, 100):
        z = prior.with_sampling(sample_steps=steps).sample(labels, torch.Generator().manual_seed(0))
        sets[f"diffusion {steps}"] = (white(z), labels.numpy())
    test_x, test_y = sets["test"]
    print(f"{loaded.meta.name}: top layer {fitted}-d, diffusion prior fitted for {args.prior_steps} steps")
    for name, (x, y) in sets.items():
        classes = np.unique(y)
        trace = np.mean([np.trace(np.cov(x[y == c].T)) for c in classes])
        spread = np.mean([np.linalg.norm(x[y == c] - x[y == c].mean(0), axis=1).mean() for c in classes])
        nearest = np.concatenate([NearestNeighbors(n_neighbors=1).fit(x[y == c])
                                  .kneighbors(test_x[test_y == c])[0][:, 0] for c in classes])
        print(f"{name:<14} within-class trace {trace:6.2f}   to centroid {spread:5.2f}   "
              f"test -> nearest median {np.median(nearest):5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
