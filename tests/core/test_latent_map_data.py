"""core.latent at dataset scale: all splits encoded through the disk cache, finding points, the worst
reconstructions, the selection CSV, lasso hit-testing, per-layer maps and the projection settings."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from core.errors import UserError
from core.latent.encoding import encode_split
from core.latent.map_data import (
    MapData,
    cached_encoding,
    encode_for_map,
    encoding_cache_path,
    encoding_key,
    find_points,
    latent_layers,
    read_selection_csv,
    worst_reconstructions,
    write_selection_csv,
)
from core.latent.positions import PositionMapper, points_in_polygon
from core.latent.projection import (
    ProjectionSettings,
    cached_projection,
    pca_2d,
    pca_2d_with_variance,
    projection_cache_path,
)


@pytest.fixture(scope="module")
def all_splits(bundled_vae, digits_dataset) -> MapData:
    splits = [(name, digits_dataset.split(name)) for name in ("train", "val", "test")]
    data = encode_for_map(bundled_vae, splits, batch_size=256)
    assert data is not None
    return data


def test_all_splits_concatenate_in_order_and_remember_where_each_row_came_from(bundled_vae, digits_dataset,
                                                                                all_splits):
    sizes = [len(digits_dataset.split(s)) for s in ("train", "val", "test")]
    assert len(all_splits) == sum(sizes) and all_splits.describe() == "train + val + test"
    row = sizes[0] + sizes[1] + 5            # the 6th test image
    assert all_splits.origin(row) == ("test", 5)
    direct = encode_split(bundled_vae.model, digits_dataset.test, batch_size=100)
    np.testing.assert_allclose(all_splits.latents.mu[sizes[0] + sizes[1]:], direct.mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(all_splits.latents.labels[:sizes[0]], digits_dataset.train.labels.numpy())


def test_encoding_is_cached_per_model_and_split_and_a_stop_returns_none(bundled_vae, digits_dataset):
    split = digits_dataset.test
    key = encoding_key(bundled_vae)
    path = encoding_cache_path(key, "test", split)
    path.unlink(missing_ok=True)
    first = cached_encoding(bundled_vae, "test", split)
    assert path.is_file()
    calls = []
    again = cached_encoding(bundled_vae, "test", split, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(first.mu, again.mu)
    assert calls == [(len(split), len(split))]               # read, not encoded batch by batch
    # another model (an in-memory snapshot with other weights) or another split's content is another entry
    other = dataclasses.replace(bundled_vae, path=None, model=_perturbed(bundled_vae.model))
    assert encoding_key(other) != key and encoding_key(other).startswith("snapshot-")
    assert encoding_cache_path(key, "val", digits_dataset.val) != path
    assert encoding_cache_path(key, "test", dataclasses.replace(split, images=split.images.flip(0))) != path
    # a damaged file is re-encoded
    path.write_bytes(b"not an npz")
    np.testing.assert_array_equal(cached_encoding(bundled_vae, "test", split).mu, first.mu)
    path.unlink()
    assert encode_for_map(bundled_vae, [("test", split)], should_stop=lambda: True) is None
    with pytest.raises(UserError):
        encode_for_map(bundled_vae, [])


def _perturbed(model):
    import copy

    clone = copy.deepcopy(model)
    with torch.no_grad():
        next(clone.parameters()).add_(0.01)
    return clone


def test_find_points_by_class_index_and_split(all_splits):
    names = [str(i) for i in range(10)]
    sevens = find_points("7", all_splits, names)
    assert len(sevens) > 0 and (all_splits.latents.labels[sevens] == 7).all()
    assert len(sevens) == int((all_splits.latents.labels == 7).sum())
    hit = find_points("test 12", all_splits, names)
    assert len(hit) == 1 and all_splits.origin(int(hit[0])) == ("test", 12)
    every = find_points("#12", all_splits, names)                # index 12 of each split shown
    assert sorted(all_splits.origin(int(r))[0] for r in every) == ["test", "train", "val"]
    assert len(find_points("cat", all_splits, names)) == 0 and len(find_points("  ", all_splits, names)) == 0
    assert len(find_points("test 999999", all_splits, names)) == 0


def test_worst_reconstructions_are_the_largest_errors_worst_first(all_splits):
    worst = worst_reconstructions(all_splits, 25)
    err = all_splits.latents.recon_error
    assert len(worst) == 25 and np.all(np.diff(err[worst]) <= 0)
    assert err[worst[-1]] >= np.sort(err)[-25]
    assert len(worst_reconstructions(all_splits, 0)) == 0
    assert len(worst_reconstructions(all_splits, 10 ** 9)) == len(err)


def test_selection_csv_names_split_index_class_and_error(all_splits, tmp_path):
    rows = np.array([len(all_splits) - 1, 3, 0])
    path = tmp_path / "sel.csv"
    write_selection_csv(path, all_splits, rows, [str(i) for i in range(10)])
    lines = list(csv.DictReader(open(path)))
    assert [(r["split"], int(r["index"])) for r in lines] == [all_splits.origin(int(r)) for r in rows]
    lat = all_splits.latents
    for line, r in zip(lines, rows, strict=True):
        assert int(line["label"]) == lat.labels[r] and line["class"] == str(lat.labels[r])
        assert float(line["reconstruction_error"]) == pytest.approx(lat.recon_error[r], rel=1e-4)
    with pytest.raises(UserError):
        write_selection_csv(tmp_path / "missing" / "x.csv", all_splits, rows, [])
    # read back (what `sample --near` takes): the same images, in order
    splits, indices, labels = read_selection_csv(path)
    assert list(zip(splits, indices.tolist(), strict=True)) == [all_splits.origin(int(r)) for r in rows]
    np.testing.assert_array_equal(labels, lat.labels[rows])


@pytest.mark.parametrize(("text", "message"), [
    (None, "no selection file"),
    ("", "lists no images"),
    ("split,idx\ntest,1\n", "needs the columns 'split' and 'index'"),
    ("split,index\nholdout,1\n", "line 2: split 'holdout'"),
    ("split,index\ntest,1\ntest,x\n", "line 3: index 'x'"),
    ("split,index\ntest,-4\n", "line 2: index -4 is negative"),
])
def test_a_bad_selection_csv_is_one_user_error_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "sel.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_selection_csv(path)


def test_points_in_polygon_on_shapes_with_known_insides():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 1, (20_000, 2))
    # a concave "L": the unit square's lower-left three quarters of [-1, 1]^2
    ell = np.array([[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]], dtype=float)
    inside = points_in_polygon(xy, ell)
    expected = np.flatnonzero(~((xy[:, 0] > 0) & (xy[:, 1] > 0)))
    assert set(inside.tolist()) == set(expected.tolist())
    # a triangle: x > 0, y > 0, x + y < 1
    tri = np.array([[0, 0], [1, 0], [0, 1]], dtype=float)
    inside = points_in_polygon(xy, tri)
    expected = np.flatnonzero((xy[:, 0] > 0) & (xy[:, 1] > 0) & (xy.sum(1) < 1))
    assert len(expected) > 1000 and set(inside.tolist()) == set(expected.tolist())
    assert len(points_in_polygon(xy, tri[:2])) == 0      # not a polygon
    assert len(points_in_polygon(xy, tri + 5)) == 0      # nowhere near the points


def test_a_layer_map_decodes_only_its_layer_and_keeps_the_nearest_points_other_layers():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(200, 6)).astype(np.float32)
    xy = mu[:, 2:4].copy()                               # the map of layer 2 (columns 2..3)
    mapper = PositionMapper(xy, mu, columns=slice(2, 4))
    p = np.array([[0.1, -0.2]])
    z = mapper.latent_at(p)[0]
    nearest = int(mapper.tree.query(p[0])[1])
    np.testing.assert_array_equal(z[[0, 1, 4, 5]], mu[nearest, [0, 1, 4, 5]])
    whole = PositionMapper(xy, mu).latent_at(p)[0]
    np.testing.assert_allclose(z[2:4], whole[2:4], rtol=1e-5)   # the layer blends as a whole-latent map would
    np.testing.assert_array_equal(mapper.latent_at(xy[7:8])[0], mu[7])   # at a data point: that point


def test_latent_layers_of_a_plain_and_a_layered_model(bundled_vae):
    d = bundled_vae.model.latent_dim
    assert latent_layers(bundled_vae.model) == (("z", slice(0, d)),)

    class Layered:
        latent_dim = 10
        latent_layers = (("top", 4), ("bottom", 6))

    assert latent_layers(Layered()) == (("top", slice(0, 4)), ("bottom", slice(4, 10)))
    Layered.latent_layers = (("top", 4), ("bottom", 5))
    with pytest.raises(UserError):
        latent_layers(Layered())


def test_pca_variance_and_projection_settings_in_the_cache_key(all_splits):
    mu = all_splits.latents.mu
    xy, explained = pca_2d_with_variance(mu)
    np.testing.assert_array_equal(xy, pca_2d(mu))
    centred = mu - mu.mean(0)
    total = centred.var(0, ddof=1).sum()
    np.testing.assert_allclose(explained, xy.astype(np.float64).var(0, ddof=1) / total, rtol=1e-3)
    assert explained[0] >= explained[1] > 0
    default = projection_cache_path("m", "test", "umap", 0, mu[:50])
    assert projection_cache_path("m", "test", "umap", 0, mu[:50], ProjectionSettings()) == default
    tuned = projection_cache_path("m", "test", "umap", 0, mu[:50], ProjectionSettings(n_neighbors=30))
    assert tuned != default and "k30" in tuned.name
    assert projection_cache_path("m", "test", "tsne", 0, mu[:50], ProjectionSettings(perplexity=10)) != \
        projection_cache_path("m", "test", "tsne", 0, mu[:50])
    with pytest.raises(UserError):
        ProjectionSettings(min_dist=2.0)


def test_settings_reach_umap_and_tsne(monkeypatch, all_splits):
    import core.latent.projection as projection

    seen = {}
    monkeypatch.setattr(projection, "umap_2d", lambda mu, **kw: seen.setdefault("umap", kw) and mu[:, :2])
    monkeypatch.setattr(projection, "tsne_2d", lambda mu, **kw: seen.setdefault("tsne", kw) and mu[:, :2])
    mu = all_splits.latents.mu[:40]
    s = ProjectionSettings(n_neighbors=7, min_dist=0.5, perplexity=12)
    cached_projection(mu, "umap", model="settings-test", split="x", settings=s)
    cached_projection(mu, "tsne", model="settings-test", split="x", settings=s)
    assert seen["umap"]["n_neighbors"] == 7 and seen["umap"]["min_dist"] == 0.5
    assert seen["tsne"]["perplexity"] == 12
