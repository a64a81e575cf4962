"""Fixtures for tests/core: the digits dataset, and writers of tiny dataset files in the formats torchvision reads.

The writers are handed out through the `dataset_files` fixture (not imported), so tests work however pytest is
started (tests/ is not a package)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from core.config import DataConfig
from core.data.datasets import Dataset, load_dataset


@pytest.fixture(scope="session")
def digits_dataset() -> Dataset:
    """The default digits dataset (16x16, grayscale, CPU): real data, loaded once per session."""
    return load_dataset(DataConfig(name="digits", image_size=16))


def distinct_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """n uint8 images that all differ (image i has pixel (0, 0) = i % 256 and random content elsewhere)."""
    images = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    images.reshape(n, -1)[:, 0] = np.arange(n) % 256
    return images


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """Write a uint8 array as an IDX file (the MNIST format: magic 0 0 8 ndim, big-endian int32 dims, raw bytes)."""
    data = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    data += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(root: Path, folder: str = "MNIST", *, n_train: int = 40, n_test: int = 20, gz: bool = False) -> dict:
    """A tiny MNIST-layout dataset at root/<folder>/raw; labels cycle 0..9. Returns the arrays written."""
    raw = root / folder / "raw"
    arrays = {"train_images": distinct_images(n_train, (28, 28), seed=1), "train_labels": np.arange(n_train) % 10,
              "test_images": distinct_images(n_test, (28, 28), seed=2), "test_labels": (np.arange(n_test) * 3) % 10}
    for prefix, part in (("train", "train"), ("t10k", "test")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[f"{part}_images"], gz=gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"{part}_labels"].astype(np.uint8), gz=gz)
    return arrays


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root: Path, *, per_batch: int = 20, n_test: int = 20, protocol: int = 2) -> dict:
    """A tiny cifar-10-batches-py folder (data_batch_1..5, test_batch, batches.meta) as CIFAR's pickles hold it:
    dicts with 'data' uint8 (n, 3072) in CHW order and 'labels' a list of ints."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train = distinct_images(5 * per_batch, (3, 32, 32), seed=3)
    train_labels = np.arange(5 * per_batch) % 10
    test = distinct_images(n_test, (3, 32, 32), seed=4)
    test_labels = (np.arange(n_test) * 7) % 10
    for b in range(5):
        s = slice(b * per_batch, (b + 1) * per_batch)
        entry = {"batch_label": f"training batch {b + 1} of 5", "data": train[s].reshape(per_batch, -1),
                 "labels": [int(v) for v in train_labels[s]], "filenames": [f"img{i}.png" for i in range(per_batch)]}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(entry, protocol=protocol))
    entry = {"batch_label": "testing batch 1 of 1", "data": test.reshape(n_test, -1),
             "labels": [int(v) for v in test_labels]}
    (folder / "test_batch").write_bytes(pickle.dumps(entry, protocol=protocol))
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_NAMES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return {"train_images": train, "train_labels": train_labels, "test_images": test, "test_labels": test_labels}


class DatasetFiles:
    """Writers of tiny datasets in torchvision's on-disk formats (see the functions above)."""

    CIFAR_NAMES = CIFAR_NAMES
    distinct_images = staticmethod(distinct_images)
    write_idx = staticmethod(write_idx)
    write_mnist = staticmethod(write_mnist)
    write_cifar10 = staticmethod(write_cifar10)


@pytest.fixture
def dataset_files() -> type[DatasetFiles]:
    return DatasetFiles
