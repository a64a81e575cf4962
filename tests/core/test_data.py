"""core.data: every loader (torchvision formats from tiny files written here, no network), splits, subsets, batches,
and each bad-input message."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from sklearn.datasets import load_digits

from core.config import DataConfig
from core.data import sources as data_sources
from core.data.datasets import Dataset, DatasetMeta, Split, known_datasets, load_dataset
from core.errors import UserError
from core.images import as_float


def indices(ds: Dataset, split: str) -> np.ndarray:
    return ds.split(split).source_index.numpy()


def counts(split: Split, k: int) -> list[int]:
    return torch.bincount(split.labels, minlength=k).tolist()


# --- digits -----------------------------------------------------------------------------------------------------------

def test_digits_shapes_dtypes_ranges(digits_dataset: Dataset) -> None:
    ds = digits_dataset
    assert ds.meta == DatasetMeta("digits", tuple("0123456789"), 1, 16)
    assert ds.meta.num_classes == 10
    for name in ("train", "val", "test"):
        s = ds.split(name)
        assert s.images.dtype == torch.uint8 and s.labels.dtype == torch.int64
        assert s.images.shape == (len(s), 1, 16, 16) and s.labels.shape == (len(s),)
        assert s.images.device.type == "cpu"
        assert int(s.labels.min()) == 0 and int(s.labels.max()) == 9
    assert int(ds.train.images.min()) == 0 and int(ds.train.images.max()) == 255
    # 1797 digits: 20% test, then 10% of the rest for validation (both per class, rounded)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    assert 350 <= len(ds.test) <= 370 and 135 <= len(ds.val) <= 155
    assert ds.skipped == ()


def test_digits_pixels_match_sklearn() -> None:
    ref = load_digits()
    ds = load_dataset(DataConfig(name="digits", image_size=8))
    for s in (ds.train, ds.val, ds.test):
        idx = s.source_index.numpy()
        expected = np.rint(ref.images[idx] * 255 / 16).astype(np.uint8)
        np.testing.assert_array_equal(s.images[:, 0].numpy(), expected)
        np.testing.assert_array_equal(s.labels.numpy(), ref.target[idx])


def test_splits_disjoint_stratified_and_cover_everything(digits_dataset: Dataset) -> None:
    train, val, test = (set(indices(digits_dataset, s).tolist()) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(range(1797))
    per_class = np.bincount(load_digits().target)
    test_counts = counts(digits_dataset.test, 10)
    for c in range(10):  # every class is split in the same proportion
        assert abs(test_counts[c] - 0.2 * per_class[c]) <= 1


def test_splits_deterministic_and_seeded() -> None:
    a = load_dataset(DataConfig(seed=3))
    b = load_dataset(DataConfig(seed=3))
    c = load_dataset(DataConfig(seed=4))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(indices(a, split), indices(b, split))
        assert torch.equal(a.split(split).images, b.split(split).images)
    assert not np.array_equal(indices(a, "val"), indices(c, "val"))
    assert len(a.val) == len(c.val)
    # the carved test set is fixed: it does not move with the seed, so runs with different seeds compare
    np.testing.assert_array_equal(indices(a, "test"), indices(c, "test"))


def test_resize_and_channels() -> None:
    ds = load_dataset(DataConfig(image_size=32, channels=3))
    assert ds.meta.channels == 3 and ds.train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 2])


def test_digits_arrays_cached_and_not_shared_with_callers() -> None:
    cfg = DataConfig(image_size=12)
    first = load_dataset(cfg)
    hits = data_sources._digits_arrays.cache_info().hits
    first.train.images.zero_()  # a caller scribbling on its tensors must not reach the cache
    second = load_dataset(cfg)
    assert data_sources._digits_arrays.cache_info().hits == hits + 1
    assert int(second.train.images.max()) == 255


def test_classes_by_name_remap_labels(digits_dataset: Dataset) -> None:
    ds = load_dataset(DataConfig(classes=("5", "3")))
    assert ds.meta.class_names == ("3", "5") and ds.meta.num_classes == 2
    for split in ("train", "val", "test"):
        full = digits_dataset.split(split)
        sub = ds.split(split)
        assert counts(sub, 2) == [int((full.labels == 3).sum()), int((full.labels == 5).sum())]
        # a class's images are the same ones it has in the full dataset: subsetting does not reshuffle the split
        keep = (full.labels == 3) | (full.labels == 5)
        np.testing.assert_array_equal(sub.source_index.numpy(), full.source_index[keep].numpy())
        assert torch.equal(sub.images, full.images[keep])
        assert torch.equal(sub.labels, (full.labels[keep] == 5).long())


def test_classes_by_index_and_by_name_on_named_classes(tmp_path: Path, dataset_files) -> None:
    dataset_files.write_mnist(tmp_path, "FashionMNIST")
    cfg = DataConfig(name="fashion-mnist", data_root=str(tmp_path), download=False, image_size=28, val_fraction=0.25)
    by_name = load_dataset(dataclasses.replace(cfg, classes=("ankle BOOT", "Trouser")))
    by_index = load_dataset(dataclasses.replace(cfg, classes=("9", "1")))
    assert by_name.meta.class_names == by_index.meta.class_names == ("Trouser", "Ankle boot")
    assert torch.equal(by_name.train.labels, by_index.train.labels)
    assert sorted(set(by_name.train.labels.tolist())) == [0, 1]
    assert len(by_name.train) + len(by_name.val) == 8  # 4 images of each of the two classes
    assert len(by_name.test) == 4  # test labels (3i mod 10) hit 1 and 9 twice each in 20 images


def test_per_class_counts_deterministic_nested() -> None:
    small = load_dataset(DataConfig(per_class=20, seed=1))
    again = load_dataset(DataConfig(per_class=20, seed=1))
    big = load_dataset(DataConfig(per_class=50, seed=1))
    full = load_dataset(DataConfig(seed=1))
    assert counts(small.train, 10) == [20] * 10 and counts(big.train, 10) == [50] * 10
    np.testing.assert_array_equal(indices(small, "train"), indices(again, "train"))
    assert set(indices(small, "train")) <= set(indices(big, "train"))
    # validation and test are carved before per_class and keep their full size
    np.testing.assert_array_equal(indices(small, "val"), indices(full, "val"))
    np.testing.assert_array_equal(indices(small, "test"), indices(full, "test"))
    other = load_dataset(DataConfig(per_class=20, seed=2))
    assert not np.array_equal(indices(small, "train"), indices(other, "train"))


def test_per_class_with_class_subset() -> None:
    ds = load_dataset(DataConfig(classes=("7",), per_class=100))
    assert ds.meta.class_names == ("7",) and len(ds.train) == 100 and set(ds.train.labels.tolist()) == {0}


def test_val_fraction_zero_gives_empty_val() -> None:
    ds = load_dataset(DataConfig(val_fraction=0.0))
    assert len(ds.val) == 0 and ds.val.images.shape == (0, 1, 16, 16)
    assert list(ds.val.batches(8, shuffle=True)) == []


# --- batches ----------------------------------------------------------------------------------------------------------

def numbered_split(n: int) -> Split:
    """Image i is 4x4 with column values (i, 0, 0, 0) so flips are visible and the id survives them."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, :, 0] = torch.arange(n, dtype=torch.uint8)[:, None] + 1
    return Split(images, torch.arange(n) % 3)


def ids(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0, 0].amax(-1).long() - 1  # works whether the image is flipped or not


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_cover_split_once(shuffle: bool) -> None:
    s = numbered_split(103)
    got = list(s.batches(10, shuffle=shuffle, generator=torch.Generator().manual_seed(0)))
    assert [len(x) for x, _ in got] == [10] * 10 + [3]
    seen = torch.cat([ids(x) for x, _ in got])
    assert sorted(seen.tolist()) == list(range(103))
    assert torch.equal(torch.cat([y for _, y in got]), seen % 3)  # labels travel with their images
    assert torch.equal(seen, torch.arange(103)) != shuffle
    dropped = list(s.batches(10, shuffle=shuffle, drop_last=True, generator=torch.Generator().manual_seed(0)))
    assert [len(x) for x, _ in dropped] == [10] * 10
    assert len(set(torch.cat([ids(x) for x, _ in dropped]).tolist())) == 100


def test_batches_shuffle_reproducible_with_generator() -> None:
    s = numbered_split(50)
    def run(seed):
        return torch.cat([ids(x) for x, _ in s.batches(7, shuffle=True, generator=torch.Generator().manual_seed(seed))])
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_flip_only_when_enabled(digits_dataset: Dataset) -> None:
    s = digits_dataset.train
    plain = torch.cat([x for x, _ in s.batches(64, shuffle=False, flip=False)])
    assert torch.equal(plain, s.images)
    gen = torch.Generator().manual_seed(0)
    flipped = torch.cat([x for x, _ in s.batches(64, shuffle=False, flip=True, generator=gen)])
    same = (flipped == s.images).flatten(1).all(1)
    mirrored = (flipped == s.images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all())  # each image is either untouched or mirrored as a whole
    changed = ~same
    assert 0.35 < changed.float().mean() < 0.65  # about half, chosen per image


def test_split_to_and_as_float(digits_dataset: Dataset) -> None:
    moved = digits_dataset.test.to("cpu")
    assert torch.equal(moved.images, digits_dataset.test.images) and len(moved) == len(digits_dataset.test)
    f = as_float(digits_dataset.test.images)
    assert f.dtype == torch.float32 and float(f.min()) == 0.0 and float(f.max()) == 1.0
    with pytest.raises(TypeError):
        as_float(f)


def test_meta_round_trip_and_bad_meta() -> None:
    meta = DatasetMeta("cifar10", ("airplane", "cat"), 3, 32)
    assert DatasetMeta.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    with pytest.raises(UserError, match="class_names"):
        DatasetMeta.from_dict({"name": "x", "channels": 1, "image_size": 8})


def test_known_datasets() -> None:
    assert known_datasets() == ["digits", "mnist", "fashion-mnist", "cifar10", "folder:PATH"]


# --- MNIST, Fashion-MNIST, CIFAR-10 from files written here ------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx_files(tmp_path: Path, dataset_files, gz: bool) -> None:
    written = dataset_files.write_mnist(tmp_path, gz=gz)
    ds = load_dataset(DataConfig(name="MNIST", data_root=str(tmp_path), download=False, image_size=28,
                                 val_fraction=0.25))
    assert ds.meta.name == "mnist" and ds.meta.class_names == tuple("0123456789") and ds.meta.channels == 1
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 20)  # official test set; 1 of 4 per class to val
    for split, part in ((ds.train, "train"), (ds.val, "train"), (ds.test, "test")):
        idx = split.source_index.numpy()
        np.testing.assert_array_equal(split.images[:, 0].numpy(), written[f"{part}_images"][idx])
        np.testing.assert_array_equal(split.labels.numpy(), written[f"{part}_labels"][idx])
    assert not set(indices(ds, "train")) & set(indices(ds, "val"))


def test_mnist_resized_and_rgb(tmp_path: Path, dataset_files) -> None:
    dataset_files.write_mnist(tmp_path)
    ds = load_dataset(DataConfig(name="mnist", data_root=str(tmp_path), download=False, image_size=32, channels=3))
    assert ds.train.images.shape[1:] == (3, 32, 32) and ds.meta.channels == 3 and ds.meta.image_size == 32


def test_fashion_mnist_names(tmp_path: Path, dataset_files) -> None:
    dataset_files.write_mnist(tmp_path, "FashionMNIST", gz=True)
    ds = load_dataset(DataConfig(name="fashion_mnist", data_root=str(tmp_path), download=False))
    assert ds.meta.name == "fashion-mnist" and ds.meta.class_names[0] == "T-shirt/top"
    assert ds.train.images.shape[1:] == (1, 16, 16)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_from_batches(tmp_path: Path, dataset_files, protocol: int) -> None:
    written = dataset_files.write_cifar10(tmp_path, protocol=protocol)
    ds = load_dataset(DataConfig(name="cifar10", data_root=str(tmp_path), download=False, image_size=32,
                                 val_fraction=0.2))
    assert ds.meta.class_names == tuple(dataset_files.CIFAR_NAMES) and ds.meta.channels == 3
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 20, 20)
    for split, part in ((ds.train, "train"), (ds.val, "train"), (ds.test, "test")):
        idx = split.source_index.numpy()
        np.testing.assert_array_equal(split.images.numpy(), written[f"{part}_images"][idx])
        np.testing.assert_array_equal(split.labels.numpy(), written[f"{part}_labels"][idx])


def test_cifar10_airplane_only_gray_small(tmp_path: Path, dataset_files) -> None:
    written = dataset_files.write_cifar10(tmp_path)
    ds = load_dataset(DataConfig(name="cifar10", data_root=str(tmp_path), download=False, classes=("airplane",),
                                 channels=1, image_size=16, val_fraction=0.0))
    assert ds.meta.class_names == ("airplane",) and ds.train.images.shape == (10, 1, 16, 16)
    assert set(ds.train.labels.tolist()) == {0} and len(ds.test) == 2
    # grayscale is ITU-R 601 luma, then an antialiased resize: compare the mean brightness with the source
    src = written["train_images"][indices(ds, "train")].astype(float)
    luma = 0.299 * src[:, 0] + 0.587 * src[:, 1] + 0.114 * src[:, 2]
    np.testing.assert_allclose(ds.train.images.float().mean((1, 2, 3)).numpy(), luma.mean((1, 2)), atol=1.5)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())  # harmless here, but a real attack would name os.system


def test_cifar10_refuses_pickles_that_run_code(tmp_path: Path, dataset_files) -> None:
    dataset_files.write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(UserError, match=r"data_batch_3.*getcwd is not allowed"):
        load_dataset(DataConfig(name="cifar10", data_root=str(tmp_path), download=False))


def test_cifar10_truncated_batch(tmp_path: Path, dataset_files) -> None:
    dataset_files.write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="cannot read CIFAR-10 file .*test_batch"):
        load_dataset(DataConfig(name="cifar10", data_root=str(tmp_path), download=False))


def test_missing_offline_without_download(tmp_path: Path) -> None:
    for name, what in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST"), ("cifar10", "CIFAR-10")):
        with pytest.raises(UserError) as err:
            load_dataset(DataConfig(name=name, data_root=str(tmp_path), download=False))
        msg = str(err.value)
        assert msg.startswith(f"{what} is not in {tmp_path}") and "downloading is off" in msg
        assert "--data-root" in msg and "\n" not in msg


def test_download_failure_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets

    def offline(self):
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(datasets.CIFAR10, "download", offline)
    monkeypatch.setattr(datasets.MNIST, "download", offline)
    for name in ("cifar10", "mnist"):
        with pytest.raises(UserError, match=rf"is not in {tmp_path} and could not be downloaded .*name resolution"):
            load_dataset(DataConfig(name=name, data_root=str(tmp_path), download=True))


def test_default_root_is_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    home = os.environ["VAE_EXPLORER_HOME"]  # set by tests/conftest.py
    with pytest.raises(UserError, match=f"is not in {home}"):
        load_dataset(DataConfig(name="mnist", download=False))


# --- folder datasets --------------------------------------------------------------------------------------------------

def make_folder(root: Path, *, color: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for cls, n, ext in (("cats", 6, "png"), ("dogs", 5, "jpg")):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = (30 + i, 40, 3) if color else (30 + i, 40)  # not square, different sizes
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / cls / f"{i}.{ext}")
    return root


def test_folder_dataset_skips_bad_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "pets")
    good = (root / "cats" / "0.png").read_bytes()
    (root / "cats" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".DS_Store").write_bytes(b"\0\0")  # hidden files are ignored, not reported
    (root / "dogs" / "x.png").write_bytes(b"garbage, not a PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported on the dataset (the Trainer logs it), not as a Python warning
        ds = load_dataset(DataConfig(name=f"folder:{root}", image_size=24, val_fraction=0.2))
    assert sorted(Path(p).name for p in ds.skipped) == ["notes.txt", "truncated.png", "x.png"]
    assert ds.meta.class_names == ("cats", "dogs") and ds.meta.channels == 3
    assert ds.meta.name == f"folder:{root.resolve()}"
    assert len(ds.train) + len(ds.val) + len(ds.test) == 11
    assert ds.train.images.shape[1:] == (3, 24, 24)
    # test (20%, fixed seed) and val are carved per class from the whole folder, disjointly
    assert counts(ds.test, 2) == [1, 1]
    all_idx = [*indices(ds, "train"), *indices(ds, "val"), *indices(ds, "test")]
    assert sorted(all_idx) == list(range(11))


def test_folder_grayscale_detection(tmp_path: Path) -> None:
    gray = make_folder(tmp_path / "gray", color=False)
    assert load_dataset(DataConfig(name=f"folder:{gray}")).meta.channels == 1
    forced = load_dataset(DataConfig(name=f"folder:{gray}", channels=3))
    assert forced.train.images.shape[1] == 3
    color = make_folder(tmp_path / "color")
    assert load_dataset(DataConfig(name=f"folder:{color}")).meta.channels == 3
    assert load_dataset(DataConfig(name=f"folder:{color}", channels=1)).train.images.shape[1] == 1


# --- folder images in every mode Pillow reads: the pixels a viewer shows ------------------------------------------

def load_one(tmp_path: Path, image: Image.Image, name: str, *, channels: int = 3, **save) -> np.ndarray:
    """The uint8 (C, H, W) pixels load_folder makes of one file (saved at the loader's size: nothing is resampled)."""
    root = tmp_path / "one"
    (root / "only").mkdir(parents=True)
    image.save(root / "only" / name, **save)
    src = data_sources.load_folder(DataConfig(image_size=image.height, channels=channels), str(root))
    assert src.skipped == ()
    return src.images[0]


GRADIENT16 = np.tile(np.linspace(0, 65535, 8).round().astype(np.uint16), (8, 1))  # left (black) to right (white)


@pytest.mark.parametrize("make, name", [
    (lambda: Image.fromarray(GRADIENT16), "g.png"),                    # 16-bit PNG: Pillow opens it as "I;16"
    (lambda: Image.fromarray(GRADIENT16), "g.tif"),                    # "I;16" TIFF
    (lambda: Image.fromarray(GRADIENT16.astype(">u2")), "g.tif"),      # big-endian "I;16B" TIFF
    (lambda: Image.fromarray(GRADIENT16.astype(np.int32)), "g.tif"),   # 32-bit "I" holding 16-bit values
], ids=["png-I;16", "tiff-I;16", "tiff-I;16B", "tiff-I"])
def test_16_bit_greyscale_is_scaled_by_the_full_range(tmp_path: Path, make, name: str) -> None:
    image = make()
    assert image.mode in ("I;16", "I;16B", "I")
    with Image.open(_saved(tmp_path, image, name)) as reopened:
        assert reopened.mode in ("I;16", "I;16B", "I")  # the file really is 16/32-bit, not converted on save
    got = load_one(tmp_path, image, name, channels=1)[0]
    expected = np.rint(GRADIENT16 * (255 / 65535)).astype(np.uint8)  # 0, 36, 73, ..., 255: not all white
    np.testing.assert_array_equal(got, expected)
    # a darker 16-bit image stays darker (scaled by the type's range, not stretched to its own maximum)
    dark = Image.fromarray((GRADIENT16 // 4).astype(np.asarray(image).dtype))
    np.testing.assert_array_equal(load_one(tmp_path / "dark", dark, name, channels=1)[0],
                                  np.rint((GRADIENT16 // 4) * (255 / 65535)).astype(np.uint8))


def test_32_bit_greyscale_beyond_16_bits_is_stretched_to_its_own_maximum(tmp_path: Path) -> None:
    values = np.tile(np.linspace(0, 1_000_000, 8).round().astype(np.int32), (8, 1))
    got = load_one(tmp_path, Image.fromarray(values), "big.tif", channels=1)[0]
    np.testing.assert_array_equal(got, np.rint(values * (255 / 1_000_000)).astype(np.uint8))


def _saved(tmp_path: Path, image: Image.Image, name: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    image.save(tmp_path / name)
    return tmp_path / name


def test_palette_image_gives_its_colours_and_transparent_index_is_black(tmp_path: Path) -> None:
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]  # red, green, blue, white (the transparent entry)
    index = np.array([[0, 1, 2, 3]] * 8, np.uint8).repeat(2, axis=1)  # 8x8 (the smallest image_size): 2 columns each
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    opaque = load_one(tmp_path / "opaque", image, "p.png")
    np.testing.assert_array_equal(opaque[:, 0, ::2], [[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]])  # RGB
    root = tmp_path / "transparent"
    got = load_one(root, image, "p.png", transparency=3)
    with Image.open(root / "one" / "only" / "p.png") as reopened:
        assert reopened.mode == "P" and reopened.info.get("transparency") == 3
    np.testing.assert_array_equal(got[:, 0, ::2], [[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0]])


def test_alpha_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = np.array([255, 128, 0, 0] * 2)[None, :]  # opaque, half, and transparent columns
    rgba[:, 3::4, :3] = 255                                   # transparent pixels that store white: must not show
    got = load_one(tmp_path / "rgba", Image.fromarray(rgba, "RGBA"), "a.png").astype(int)
    np.testing.assert_array_equal(got[:, 0, 0], [200, 100, 50])
    np.testing.assert_allclose(got[:, 0, 1], np.array([200, 100, 50]) * 128 / 255, atol=1)
    np.testing.assert_array_equal(got[:, :, 2::4], 0)
    np.testing.assert_array_equal(got[:, :, 3::4], 0)
    la = np.stack([np.full((8, 8), 255, np.uint8), np.array([[255, 0] * 4] * 8, np.uint8)], axis=-1)
    got = load_one(tmp_path / "la", Image.fromarray(la, "LA"), "la.png", channels=1)[0]
    np.testing.assert_array_equal(got, [[255, 0] * 4] * 8)   # white where opaque, black where transparent


@pytest.mark.parametrize("name, tolerance", [("c.tif", 0), ("c.jpg", 4)])
def test_cmyk_gives_rgb(tmp_path: Path, name: str, tolerance: int) -> None:
    image = Image.new("CMYK", (16, 16), (255, 0, 0, 0))   # cyan
    image.paste((0, 0, 0, 255), (8, 0, 16, 16))            # black on the right half
    with Image.open(_saved(tmp_path, image, name)) as reopened:
        assert reopened.mode == "CMYK"
    got = load_one(tmp_path, image, name, quality=100) if name.endswith("jpg") else load_one(tmp_path, image, name)
    np.testing.assert_allclose(got[:, 4, 2], [0, 255, 255], atol=tolerance)
    np.testing.assert_allclose(got[:, 4, 12], [0, 0, 0], atol=tolerance)


@pytest.mark.parametrize("name, tolerance", [("r.png", 0), ("r.jpg", 3)])
def test_exif_orientation_is_applied(tmp_path: Path, name: str, tolerance: int) -> None:
    upright = np.zeros((16, 16), np.uint8)  # four 8x8 quadrants (JPEG's blocks): 0 60 / 120 240
    upright[:8, 8:], upright[8:, :8], upright[8:, 8:] = 60, 120, 240
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    got = load_one(tmp_path, stored, name, channels=1, exif=exif, **({"quality": 100} if "jpg" in name else {}))[0]
    with Image.open(tmp_path / "one" / "only" / name) as reopened:
        assert reopened.getexif().get(0x0112) == 6
        np.testing.assert_allclose(np.asarray(ImageOps.exif_transpose(reopened)), upright, atol=tolerance)
    np.testing.assert_allclose(got, upright, atol=tolerance)


# --- bad input: one clear message each --------------------------------------------------------------------------------

def test_unknown_dataset_lists_known() -> None:
    with pytest.raises(UserError, match="unknown dataset 'imagenet'; known datasets: digits, mnist, fashion-mnist, "
                                        "cifar10, folder:PATH"):
        load_dataset(DataConfig(name="imagenet"))


def test_unknown_class_lists_classes() -> None:
    with pytest.raises(UserError, match=r"unknown class 'eleven'; the classes are: 0, 1, .*, 9 \(or their indices"):
        load_dataset(DataConfig(classes=("3", "eleven")))
    with pytest.raises(UserError, match="unknown class '10'"):
        load_dataset(DataConfig(classes=("10",)))


def test_per_class_too_large_says_how_many() -> None:
    with pytest.raises(UserError, match=r"per_class=1000 is more than the \d+ training images of class '\d'.*"
                                        r"use per_class <= \d+"):
        load_dataset(DataConfig(per_class=1000))


def test_bad_split_name(digits_dataset: Dataset) -> None:
    with pytest.raises(UserError, match="unknown split 'validation'"):
        digits_dataset.split("validation")


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="folder: needs a path"):
        load_dataset(DataConfig(name="folder: "))
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(DataConfig(name=f"folder:{tmp_path / 'nowhere'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is empty"):
        load_dataset(DataConfig(name=f"folder:{tmp_path / 'empty'}"))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    with pytest.raises(UserError, match="has no class subfolders"):
        load_dataset(DataConfig(name=f"folder:{flat}"))
    bad = make_folder(tmp_path / "bad")
    (bad / "birds").mkdir()
    (bad / "birds" / "readme.txt").write_text("no pictures here")
    with pytest.raises(UserError, match=r"class folder .*birds has no readable images \(1 files"):
        load_dataset(DataConfig(name=f"folder:{bad}"))
