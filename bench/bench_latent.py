"""Benchmarks of the latent tools: PCA / UMAP map time and quality, position -> image, sampler grid, decode rate.

    .venv/bin/python bench/bench_latent.py [--n 10000] [--threads 1] [--skip-umap] [--variants]

Latents: the bundled VAE (resources/digits-vae.safetensors) encoding the digits images plus copies shifted by one
pixel (to reach --n); without the bundled model, a 10-component Gaussian mixture in 16-D stands in (printed).
Trustworthiness (k=10) is sklearn's formula, computed in chunks (sklearn's own needs two N x N arrays; checked
against sklearn on 2,000 points at the start). Run it twice: the first run fills the numba cache.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch


def timed(fn, repeat: int = 1):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def trustworthiness(x: np.ndarray, emb: np.ndarray, k: int = 10, chunk: int = 1024) -> float:
    """sklearn.manifold.trustworthiness (euclidean), without the N x N matrices: the rank of j among i's original
    neighbours is the count of points closer to i than j."""
    xt, et = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(emb, dtype=torch.float64)
    n = len(xt)
    penalty = 0.0
    for s in range(0, n, chunk):
        rows = torch.arange(s, min(s + chunk, n))
        dx = torch.cdist(xt[rows], xt)
        de = torch.cdist(et[rows], et)
        dx[torch.arange(len(rows)), rows] = -1.0     # self first
        de[torch.arange(len(rows)), rows] = -1.0
        emb_nn = torch.topk(de, k + 1, largest=False).indices[:, 1:]
        d_ij = dx.gather(1, emb_nn)
        ranks = (dx.unsqueeze(1) < d_ij.unsqueeze(2)).sum(2)   # self (-1) counts: nearest other point has rank 1
        penalty += (ranks - k).clamp_min(0).sum().item()
    return 1.0 - penalty * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))


def gaussian_mixture(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 2.5, (10, dim))
    labels = rng.integers(0, 10, n)
    basis = rng.normal(0, 1, (10, dim, 4)) / 2
    z = np.einsum("ndk,nk->nd", basis[labels], rng.normal(0, 1, (n, 4))) + rng.normal(0, 0.3, (n, dim))
    return (means[labels] + z).astype(np.float32), labels


def digits_latents(model, n: int) -> tuple[np.ndarray, np.ndarray]:
    from core.config import DataConfig
    from core.data.datasets import Split, load_dataset
    from core.latent.encoding import encode_split

    ds = load_dataset(DataConfig(image_size=model.image_size))
    images = torch.cat([ds.train.images, ds.val.images, ds.test.images])
    labels = torch.cat([ds.train.labels, ds.val.labels, ds.test.labels])
    shifted, ys = [images], [labels]
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    i = 0
    while sum(len(s) for s in shifted) < n:
        shifted.append(torch.roll(images, shifts=shifts[i % len(shifts)], dims=(2, 3)))
        ys.append(labels)
        i += 1
    split = Split(images=torch.cat(shifted)[:n], labels=torch.cat(ys)[:n])
    lat = encode_split(model, split)
    return lat.mu, lat.labels


def bench_tsne(mu: np.ndarray) -> None:
    """Ours (openTSNE, with progress and cancel) against scikit-learn's TSNE, and how soon a cancel takes effect."""
    from sklearn.manifold import TSNE

    from core.latent.projection import tsne_2d

    tsne_2d(mu[:100], seed=0)    # imports
    ours, t_ours = timed(lambda: tsne_2d(mu, seed=0))
    perplexity = float(min(30.0, max(2.0, (len(mu) - 1) / 3)))
    ref, t_ref = timed(lambda: TSNE(n_components=2, init="pca", random_state=0, perplexity=perplexity)
                       .fit_transform(mu))
    print(f"t-SNE {len(mu)} latents: ours (openTSNE) {t_ours:.1f} s, trustworthiness {trustworthiness(mu, ours):.4f}; "
          f"scikit-learn {t_ref:.1f} s, trustworthiness {trustworthiness(mu, ref):.4f}")
    asked: list[float] = []      # a Cancel from another thread half way through, as the GUI's button does
    timer = threading.Timer(t_ours / 2, lambda: asked.append(time.perf_counter()))
    timer.start()
    out = tsne_2d(mu, seed=0, should_stop=lambda: bool(asked))
    returned = time.perf_counter()
    timer.join()
    print(f"t-SNE cancelled half way: returned {'None' if out is None else 'a map'} "
          f"{(returned - asked[0]) * 1000:.0f} ms after the request (scikit-learn: not interruptible)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the GUI leaves one core to itself)")
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--variants", action="store_true", help="also time the UMAP variants we considered")
    ap.add_argument("--tsne", type=int, default=3000, metavar="N",
                    help="t-SNE of the first N latents: openTSNE (ours) vs scikit-learn, and cancel latency (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from core.config import DataConfig, VAEConfig
    from core.latent.encoding import decode_latents
    from core.latent.interpolation import lerp
    from core.latent.positions import PositionMapper
    from core.latent.projection import exact_knn, pca_2d
    from core.latent.sampling import sample_grid
    from core.paths import bundled_model

    path = bundled_model("vae")
    if path is not None:
        from core.training.checkpoint import load_model

        model = load_model(path).model
        mu, labels = digits_latents(model, args.n)
        print(f"latents: bundled VAE on digits + 1-px shifts, n={len(mu)}, D={mu.shape[1]}")
    else:
        from core.data.datasets import DatasetMeta
        from core.models.vae import ConditionalVAE

        meta = DatasetMeta(name="digits", class_names=tuple("0123456789"), channels=1,
                           image_size=DataConfig().image_size)
        model = ConditionalVAE(VAEConfig(), meta).eval()
        mu, labels = gaussian_mixture(args.n)
        print(f"latents: NO bundled model -> 16-D Gaussian mixture stand-in, n={len(mu)}; decode timings use an "
              f"untrained default ConditionalVAE ({model.image_size} px)")
    print(f"torch threads: {torch.get_num_threads()}")

    xy, t_pca = timed(lambda: pca_2d(mu), repeat=5)
    print(f"PCA {len(mu)} latents: {t_pca * 1000:.1f} ms (target < 500 ms)")
    _, t_knn = timed(lambda: exact_knn(mu, 15), repeat=3)
    print(f"exact kNN (k=15, torch): {t_knn:.2f} s")

    # position -> latent -> image, one query at a time as the GUI does it
    pm = PositionMapper(xy, mu, labels)
    rng = np.random.default_rng(0)
    lo, hi = xy.min(0), xy.max(0)
    pts = rng.uniform(lo, hi, (200, 2))
    decode_latents(model, pm.latent_at(pts[:1]), pm.label_at(pts[:1]))

    def query_all():
        for p in pts:
            q = p[None]
            decode_latents(model, pm.latent_at(q), pm.label_at(q))
            pm.distance_to_data(q)
    _, t_q = timed(query_all, repeat=3)
    print(f"position -> latent -> image: {t_q / len(pts) * 1000:.2f} ms per query (target < 20 ms)")

    classes = list(range(10)) if model.num_classes else [0]
    n_cols = 100 // len(classes)
    sample_grid(model, classes, n_cols, seed=0)
    _, t_grid = timed(lambda: sample_grid(model, classes, n_cols, seed=0), repeat=5)
    print(f"sampler grid {len(classes) * n_cols} images: {t_grid * 1000:.1f} ms (target < 100 ms)")

    z0, z1 = mu[0], mu[1]

    def slider_decodes():
        for t in np.linspace(0, 1, 100):
            decode_latents(model, lerp(z0, z1, t), labels[0])
    _, t_dec = timed(slider_decodes, repeat=3)
    print(f"slider decodes: {100 / t_dec:.0f} decodes/s at {model.image_size} px (target >= 30)")

    if args.tsne:
        bench_tsne(mu[:args.tsne])
    if args.skip_umap:
        return
    from core.latent.projection import _import_umap, umap_2d, umap_reference

    sub = rng.choice(len(mu), 2000, replace=False)
    from sklearn.manifold import trustworthiness as sk_trust
    a = sk_trust(mu[sub], xy[sub], n_neighbors=10)
    b = trustworthiness(mu[sub], xy[sub], 10)
    print(f"trustworthiness check on 2000 points: sklearn {a:.5f}, chunked {b:.5f}")

    _, t_imp = timed(_import_umap)
    print(f"import umap: {t_imp:.1f} s (cold numba cache ~30 s; warm is what the second launch pays)")
    # compile (or load from the numba cache) every function both paths use, so neither timing below includes it
    _, t_warm = timed(lambda: (umap_2d(mu[:300], seed=0), umap_reference(mu[:300], seed=0)))
    print(f"UMAP warm-up on 300 points (numba compile/cache load): {t_warm:.1f} s")
    print(f"trustworthiness(k=10) of PCA: {trustworthiness(mu, xy):.4f}")

    emb, t_ours = timed(lambda: umap_2d(mu, seed=0))
    print(f"UMAP ours (torch exact kNN, {200} epochs, init=pca): {t_ours:.1f} s, "
          f"trustworthiness {trustworthiness(mu, emb):.4f} (target <= 8 s)")
    ref, t_ref = timed(lambda: umap_reference(mu, seed=0))
    print(f"UMAP umap-learn defaults: {t_ref:.1f} s, trustworthiness {trustworthiness(mu, ref):.4f}")
    if args.variants:
        for kw in ({"n_epochs": 500, "init": "pca"}, {"n_epochs": 200, "init": "spectral"},
                   {"n_epochs": 100, "init": "pca"}):
            e, t = timed(lambda kw=kw: umap_2d(mu, seed=0, **kw))
            print(f"UMAP variant {kw}: {t:.1f} s, trustworthiness {trustworthiness(mu, e):.4f}")


if __name__ == "__main__":
    main()
