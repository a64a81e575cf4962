"""core.latent: maps, position -> latent, interpolation, traversal, sampler grids.

The model is the real ConditionalVAE: the bundled digits model when resources/ has it, else one trained briefly here
(cached for the session in the test home)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import VAEConfig
from core.images import as_float
from core.latent.encoding import Latents, decode_latents, encode_split, nearest_neighbours
from core.latent.interpolation import interpolate_images, lerp, slerp, traversal_order
from core.latent.positions import PositionMapper
from core.latent.projection import (
    cached_projection,
    exact_knn,
    model_key,
    pca_2d,
    projection_cache_path,
    tsne_2d,
    umap_2d,
)
from core.latent.sampling import grid_noise, sample_grid
from core.models import build_model
from core.training.checkpoint import LoadedModel


@pytest.fixture(scope="module")
def vae(bundled_vae) -> LoadedModel:
    return bundled_vae


@pytest.fixture(scope="module")
def test_latents(vae, digits_dataset) -> Latents:
    lat = encode_split(vae.model, digits_dataset.test, batch_size=100)
    assert lat is not None
    return lat


# ---- encoding --------------------------------------------------------------------------------------------------------

def test_encode_split_shapes_and_values(vae, digits_dataset, test_latents):
    n, d = len(digits_dataset.test), vae.model.latent_dim
    lat = test_latents
    assert lat.mu.shape == (n, d) and lat.mu.dtype == np.float32
    assert lat.logvar.shape == (n, d)
    assert np.array_equal(lat.labels, digits_dataset.test.labels.numpy())
    assert lat.recon_error.shape == (n,) and (lat.recon_error >= 0).all()
    assert lat.kl.shape == (n,) and (lat.kl >= 0).all()
    assert lat.kl_per_dim.shape == (d,)
    # the same batch through the model directly gives the same means
    x = as_float(digits_dataset.test.images[:5])
    with torch.no_grad():
        mu, _ = vae.model.encode(x, digits_dataset.test.labels[:5])
    np.testing.assert_allclose(lat.mu[:5], mu.numpy(), rtol=1e-4, atol=1e-5)


def test_encode_split_progress_and_stop(vae, digits_dataset):
    calls = []
    lat = encode_split(vae.model, digits_dataset.test, batch_size=100, progress=lambda d, t: calls.append((d, t)))
    n = len(digits_dataset.test)
    assert lat is not None and calls[-1] == (n, n) and len(calls) == -(-n // 100)
    assert encode_split(vae.model, digits_dataset.test, batch_size=100, should_stop=lambda: True) is None


# ---- projections -----------------------------------------------------------------------------------------------------

def test_pca_shape_determinism_and_variance_order(test_latents):
    xy = pca_2d(test_latents.mu)
    assert xy.shape == (len(test_latents), 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, pca_2d(test_latents.mu.copy()))
    assert xy[:, 0].var() >= xy[:, 1].var() > 0
    # the two components are uncorrelated and capture more variance than any single latent coordinate
    assert abs(np.corrcoef(xy.T)[0, 1]) < 1e-3
    assert xy[:, 0].var() >= test_latents.mu.var(axis=0).max() - 1e-6


def test_exact_knn_matches_brute_force():
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    idx, dist = exact_knn(x, 5, chunk=64)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    want = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert (idx[:, 0] == np.arange(300)).all()
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(dist, np.take_along_axis(d, want, 1), atol=1e-4)


@pytest.mark.timeout(900)   # a cold numba cache compiles umap + pynndescent: ~30 s quiet, minutes on a busy machine
def test_umap_small_shape_determinism_progress_and_stop(test_latents):
    """The one UMAP test: a few hundred points (the first umap import compiles with numba, ~30 s cold)."""
    mu = test_latents.mu[:300]
    seen = []
    a = umap_2d(mu, seed=3, progress=lambda d, t: seen.append((d, t)))
    b = umap_2d(mu, seed=3)
    assert a.shape == (300, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert seen[0] == (0, 100) and seen[-1] == (100, 100) and len(seen) > 3
    assert umap_2d(mu, seed=3, should_stop=lambda: True) is None
    # a stop during the optimisation (after the kNN and the import) also ends with None
    ticks = []
    assert umap_2d(mu, seed=3, progress=lambda d, t: ticks.append(d), should_stop=lambda: len(ticks) > 3) is None
    # A stop on a worker thread leaves umap's progress bar lock free: the next UMAP, on any thread, does not wait for
    # a lock the finished worker still holds (tqdm's refresh() has no try/finally; the app's map hung on it)
    import threading

    import umap.layouts

    ticks.clear()
    worker = threading.Thread(target=umap_2d, args=(mu,), kwargs={"seed": 3, "progress": lambda d, t: ticks.append(d),
                                                                  "should_stop": lambda: len(ticks) > 3})
    worker.start()
    worker.join(300)
    assert not worker.is_alive() and len(ticks) > 3
    lock = umap.layouts.tqdm.get_lock()
    for part in getattr(lock, "locks", [lock]):
        assert part.acquire(timeout=5), "a stopped UMAP left its progress bar's lock held"
        part.release()
    # UMAP keeps latent neighbourhoods (a conditional VAE's z codes style, not class, so we test neighbours, not
    # class purity): trustworthiness far above a random layout's
    from sklearn.manifold import trustworthiness

    rand = np.random.default_rng(0).normal(size=(300, 2))
    assert trustworthiness(mu, a, n_neighbors=10) > max(0.8, trustworthiness(mu, rand, n_neighbors=10) + 0.2)


def test_tsne_shape_determinism_progress_and_cancel_midway(test_latents):
    mu = test_latents.mu[:200]
    seen = []
    a = tsne_2d(mu, seed=1, progress=lambda d, t: seen.append((d, t)))
    assert a.shape == (200, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, tsne_2d(mu, seed=1))
    total = seen[-1][1]
    assert seen[0] == (0, total) and seen[-1] == (total, total) and len(seen) > 10
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # a cancel during the optimisation ends it there (openTSNE's callback), with None
    ticks = []
    assert tsne_2d(mu, seed=1, progress=lambda d, t: ticks.append(d), should_stop=lambda: len(ticks) > 3) is None
    assert len(ticks) <= 5 and max(ticks) < total // 2
    from sklearn.manifold import trustworthiness

    rand = np.random.default_rng(0).normal(size=(200, 2))
    assert trustworthiness(mu, a, n_neighbors=10) > max(0.8, trustworthiness(mu, rand, n_neighbors=10) + 0.2)


def test_projection_cache_reads_what_it_wrote(monkeypatch, test_latents):
    import core.latent.projection as proj

    mu = test_latents.mu
    fake = np.arange(len(mu) * 2, dtype=np.float32).reshape(-1, 2)
    calls = []
    monkeypatch.setattr(proj, "project", lambda *a, **k: calls.append(1) or fake)
    out = cached_projection(mu, "umap", model="m1", split="test", seed=0)
    assert projection_cache_path("m1", "test", "umap", 0, mu).is_file()
    again = cached_projection(mu, "umap", model="m1", split="test", seed=0)
    np.testing.assert_array_equal(out, fake)
    np.testing.assert_array_equal(again, fake)
    assert len(calls) == 1
    cached_projection(mu, "umap", model="m1", split="test", seed=1)     # another seed is another entry
    cached_projection(mu + 1, "umap", model="m1", split="test", seed=0)  # other latents, another entry
    assert len(calls) == 3


def test_model_key(vae):
    key = model_key(vae)
    assert key.startswith("ckpt-") and key == model_key(vae)
    assert model_key(LoadedModel(model=vae.model, config=vae.config, meta=vae.meta, path=None, step=7,
                                 epoch=0)) == "snapshot-step7"


# ---- position -> latent ----------------------------------------------------------------------------------------------

def test_position_mapper_exact_at_points_and_blends_between(test_latents):
    mu, labels = test_latents.mu, test_latents.labels
    xy = pca_2d(mu)
    pm = PositionMapper(xy, mu, labels)
    np.testing.assert_array_equal(pm.latent_at(xy[:20]), mu[:20])
    np.testing.assert_array_equal(pm.label_at(xy[:20]), labels[:20])
    assert np.allclose(pm.distance_to_data(xy[:20]), 0)
    # the midpoint of two isolated points is their average latent
    two = PositionMapper(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), k=2)
    np.testing.assert_allclose(two.latent_at(np.array([[0.5, 0.0]]))[0], [0.5, 0.5], atol=1e-6)
    q = two.latent_at(np.array([[0.25, 0.0]]))[0]
    assert q[0] > 0.5 > q[1] and abs(q.sum() - 1) < 1e-6            # closer to the first point, convex weights
    # a query between neighbours lies in the hull of their latents (convex combination of the k nearest)
    mid = (xy[0] + xy[1]) / 2
    z = pm.latent_at(mid[None])[0]
    _, ids = pm.tree.query(mid, k=pm.k)
    assert (z >= mu[ids].min(0) - 1e-5).all() and (z <= mu[ids].max(0) + 1e-5).all()
    # far away counts as far from data, in units of the typical spacing
    far = xy.max(0) + 10 * np.ptp(xy, axis=0)
    assert pm.distance_to_data(far[None])[0] > 20
    img = pm.distance_image((float(xy[:, 0].min()), float(xy[:, 0].max())), (0.0, 1.0), size=16)
    assert img.shape == (16, 16) and (img >= 0).all()


def test_position_to_image(vae, test_latents):
    xy = pca_2d(test_latents.mu)
    pm = PositionMapper(xy, test_latents.mu, test_latents.labels)
    p = np.array([[0.3, -0.2]])
    img = decode_latents(vae.model, pm.latent_at(p), pm.label_at(p))
    assert img.shape == (1, vae.meta.image_size, vae.meta.image_size, vae.meta.channels) and img.dtype == np.uint8


# ---- interpolation and traversal -------------------------------------------------------------------------------------

def test_lerp_and_slerp_endpoints():
    rng = np.random.default_rng(1)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    for f in (lerp, slerp):
        np.testing.assert_allclose(f(z0, z1, 0.0), z0, atol=1e-5)
        np.testing.assert_allclose(f(z0, z1, 1.0), z1, atol=1e-5)
        assert f(z0, z1, np.linspace(0, 1, 7)).shape == (7, 16)
        assert f(z0, z1, 0.5).shape == (16,)


def test_slerp_norm_behaviour():
    rng = np.random.default_rng(2)
    a = rng.normal(size=32)
    b = rng.normal(size=32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)                     # equal norms
    path = slerp(a, b, np.linspace(0, 1, 11))
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-5)
    # lerp cuts through the middle: its midpoint is shorter
    assert np.linalg.norm(lerp(a, b, 0.5)) < np.linalg.norm(a) * 0.95
    # different norms: the norm moves linearly
    c = 3 * b
    norms = np.linalg.norm(slerp(a, c, np.linspace(0, 1, 5)), axis=1)
    np.testing.assert_allclose(norms, np.linspace(np.linalg.norm(a), np.linalg.norm(c), 5), rtol=1e-5)


def test_slerp_parallel_and_opposite_vectors():
    a = np.array([1.0, 2.0, 2.0])
    same = slerp(a, 2 * a, np.linspace(0, 1, 5))
    assert np.isfinite(same).all()
    np.testing.assert_allclose(same, lerp(a, 2 * a, np.linspace(0, 1, 5)), atol=1e-5)
    opp = slerp(a, -a, np.linspace(0, 1, 5))
    assert np.isfinite(opp).all()
    np.testing.assert_allclose(opp[[0, -1]], [a, -a], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(opp, axis=1), 3.0, rtol=1e-5)
    zero = slerp(np.zeros(3), a, 0.5)
    np.testing.assert_allclose(zero, a / 2, atol=1e-6)


def test_traversal_order_by_kl():
    kl = np.array([0.0, 2.5, 0.3, 2.5, 1.0])
    np.testing.assert_array_equal(traversal_order(kl), [1, 3, 4, 2, 0])


def test_traversal_order_of_a_real_model(test_latents):
    order = traversal_order(test_latents.kl_per_dim)
    assert sorted(order) == list(range(test_latents.mu.shape[1]))
    assert np.all(np.diff(test_latents.kl_per_dim[order]) <= 0)


def test_class_morph_and_interpolation_endpoints(vae, test_latents):
    model = vae.model
    z = test_latents.mu[0]
    imgs = interpolate_images(model, z, 3, z, 8, np.linspace(0, 1, 5))    # a class morph: z held, label walks
    assert imgs.shape[0] == 5
    d3, d8 = decode_latents(model, z[None], 3)[0], decode_latents(model, z[None], 8)[0]
    assert np.abs(imgs[0].astype(int) - d3).max() <= 1
    assert np.abs(imgs[-1].astype(int) - d8).max() <= 1
    assert np.abs(d3.astype(int) - d8).max() > 10            # the classes really decode differently
    z0, z1 = test_latents.mu[0], test_latents.mu[1]
    y0, y1 = int(test_latents.labels[0]), int(test_latents.labels[1])
    for spherical in (False, True):
        path = interpolate_images(model, z0, y0, z1, y1, [0.0, 0.5, 1.0], spherical=spherical)
        assert np.abs(path[0].astype(int) - decode_latents(model, z0[None], y0)[0]).max() <= 1
        assert np.abs(path[-1].astype(int) - decode_latents(model, z1[None], y1)[0]).max() <= 1


@pytest.mark.parametrize("layers", [1, 2])
def test_class_morph_blends_concatenated_and_per_stage_labels(digits_dataset, layers):
    """With concat + FiLM conditioning (the mnist preset's) the label is not a shift of z: the morph gives the
    decoder class weights, so the path starts and ends at the two labels' images and passes through blends."""
    cfg = VAEConfig(latent_dim=8, width=8, stages=2, conditioning="concat", stage_labels="film",
                    stochastic_layers=layers)
    torch.manual_seed(0)
    model = build_model(cfg, digits_dataset.meta).eval()
    with torch.no_grad():                       # FiLM tables start at zero; give them values so the stages matter
        for table in model.dec_stage_label:
            table.weight.normal_(0, 0.5)
    assert not model.label_is_additive
    z = np.random.default_rng(0).standard_normal(model.latent_dim).astype(np.float32)
    ts = np.linspace(0, 1, 5)
    path = interpolate_images(model, z, 2, z, 7, ts).astype(int)
    d2, d7 = decode_latents(model, z[None], 2)[0].astype(int), decode_latents(model, z[None], 7)[0].astype(int)
    assert np.abs(path[0] - d2).max() <= 1 and np.abs(path[-1] - d7).max() <= 1
    assert np.abs(d2 - d7).max() > 10
    for k in (1, 2, 3):                          # every step in between is neither endpoint (no switch at t = 0.5)
        assert np.abs(path[k] - d2).mean() > 0.5 and np.abs(path[k] - d7).mean() > 0.5
    # distance from the start grows along the path
    dist = [np.abs(p - d2).mean() for p in path]
    assert dist == sorted(dist)
    # one-hot weights are exactly the hard label; wrong-shaped weights are refused
    with torch.no_grad():
        zt = torch.as_tensor(z[None])
        hard = model.decode(zt, torch.tensor([2]))
        soft = model.decode(zt, torch.nn.functional.one_hot(torch.tensor([2]), 10).float())
        torch.testing.assert_close(hard, soft)
        with pytest.raises(ValueError, match="class weights"):
            model.decode(zt, torch.ones(1, 3))


def test_nearest_neighbours(test_latents):
    mu = test_latents.mu
    nn = nearest_neighbours(mu, 5, k=6)
    assert len(nn) == 6 and 5 not in nn
    d = np.linalg.norm(mu - mu[5], axis=1)
    d[5] = np.inf
    np.testing.assert_array_equal(nn, np.argsort(d, kind="stable")[:6])


# ---- sampler grid ----------------------------------------------------------------------------------------------------

def test_sample_grid_shape_and_seed(vae):
    model, meta = vae.model, vae.meta
    g = sample_grid(model, [0, 3, 7], 4, temperature=0.8, seed=5)
    assert g.shape == (12, meta.image_size, meta.image_size, meta.channels) and g.dtype == np.uint8
    np.testing.assert_array_equal(g, sample_grid(model, [0, 3, 7], 4, temperature=0.8, seed=5))
    assert not np.array_equal(g, sample_grid(model, [0, 3, 7], 4, temperature=0.8, seed=6))
    # row r is class rows[r]: the first row equals a one-row grid of that class with the same noise
    z = grid_noise(3, 4, model.latent_dim, temperature=0.8, seed=5, same_noise=False)
    np.testing.assert_array_equal(g[4:8], decode_latents(model, z[4:8], 3))
    # temperature 0: every sample of a class is the decoded prior mean
    flat = sample_grid(model, [2], 3, temperature=0.0, seed=1)
    assert (flat == flat[0]).all()


def test_sample_grid_same_noise_shares_columns(vae):
    z = grid_noise(3, 5, 8, temperature=1.0, seed=0, same_noise=True).reshape(3, 5, 8)
    assert (z == z[0]).all() and not (z[0] == z[0, 0]).all()
    g = sample_grid(vae.model, [1, 1], 5, seed=0, same_noise=True)
    np.testing.assert_array_equal(g[:5], g[5:])                   # same class + same noise = same images
    other = sample_grid(vae.model, [1, 1], 5, seed=0, same_noise=False)
    assert not np.array_equal(other[:5], other[5:])


def test_sample_grid_unconditional_is_one_row(digits_dataset):
    torch.manual_seed(0)
    model = build_model(VAEConfig(latent_dim=4, width=8, stages=2, conditional=False), digits_dataset.meta).eval()
    g = sample_grid(model, [0, 1, 2, 3], 6, seed=0)
    assert g.shape == (6, 16, 16, 1)
    lat = encode_split(model, digits_dataset.test)
    assert lat.mu.shape == (len(digits_dataset.test), 4)
    path = interpolate_images(model, lat.mu[0], 0, lat.mu[1], 0, [0.0, 1.0])   # no labels: z alone moves
    assert path.shape == (2, 16, 16, 1)
    assert np.abs(path[-1].astype(int) - decode_latents(model, lat.mu[1:2])[0]).max() <= 1
