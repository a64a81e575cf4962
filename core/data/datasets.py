"""Datasets as device-resident uint8 tensors: a registry by name, class subsets, fixed splits, batches sliced on device.

Every dataset comes out the same way: uint8 images (N, C, H, W), int64 labels, class names, and a train / val / test
split. How the splits are made (documented here because results depend on it):
- test: the official test set where one exists (mnist, fashion-mnist, cifar10); otherwise (digits, folders) 20% of
  each class, carved with a *fixed* seed, so every run, whatever its `seed`, is scored on the same images.
- val: `val_fraction` of each class of the training set, carved with `cfg.seed`.
- `per_class=N`: the first N of each class's seeded shuffle of what remains after val, so the model trains on exactly
  N images per class (the reference study's "100 images of each class") and validation keeps its full size.
  Larger N gives a superset of smaller N.
Each class is shuffled by its own generator (seeded with the class's original index), so a class's split does not
change when other classes are added or removed with `classes`.

The loaders of each format (digits, torchvision's files, image folders) live in `core.data.sources`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.config import DataConfig
from core.data.sources import LOADERS, load_folder, resize
from core.errors import UserError

MAX_CLASSES = 100_000      # what a checkpoint's metadata may claim (ImageNet-21k has 21,841)
MAX_IMAGE_SIZE = 4096
_TEST_FRACTION = 0.2  # share of each class held out as test set where a dataset has no official one
_TEST_SEED = 20_240_229  # fixed: the carved test set must not move when the user changes `seed`


@dataclass(frozen=True)
class DatasetMeta:
    """What a model (and a checkpoint) needs to know about its data."""

    name: str
    class_names: tuple[str, ...]
    channels: int
    image_size: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetMeta:
        """Checked field by field (it comes from files): UserError naming the field and what was expected."""
        keys = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) != keys:
            raise UserError(f"dataset metadata must have exactly the keys {sorted(keys)}, got {str(d)[:200]}")
        names = d["class_names"]
        if not isinstance(d["name"], str) or not d["name"]:
            raise UserError(f"dataset metadata: name must be a non-empty string, not {d['name']!r}")
        if not isinstance(names, list) or len(names) > MAX_CLASSES or not all(isinstance(c, str) for c in names):
            raise UserError(f"dataset metadata: class_names must be a list of at most {MAX_CLASSES} strings")
        if type(d["channels"]) is not int or d["channels"] not in (1, 3):
            raise UserError(f"dataset metadata: channels must be 1 or 3, not {d['channels']!r}")
        if type(d["image_size"]) is not int or not 1 <= d["image_size"] <= MAX_IMAGE_SIZE:
            raise UserError(f"dataset metadata: image_size must be a whole number from 1 to {MAX_IMAGE_SIZE}, not "
                            f"{d['image_size']!r}")
        return cls(name=d["name"], class_names=tuple(names), channels=d["channels"], image_size=d["image_size"])


@dataclass
class Split:
    """One split held on a device. `source_index` (CPU int64) is each image's position in the file it came from (the
    official train or test set, or the whole collection when the test set was carved): bookkeeping for tests and for
    tracing an image back to its origin."""

    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,)
    source_index: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                flip: bool = False, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of (uint8 images, labels) batches, indexed on the split's device (no DataLoader, no copies to
        the host). Unshuffled, unflipped batches are views: do not modify them in place."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        device = self.images.device
        # Random numbers come from the generator's device (a CPU generator may drive a CUDA split) and move over.
        rng_device = generator.device if generator is not None else device
        n = len(self)
        order = torch.randperm(n, generator=generator, device=rng_device).to(device) if shuffle else None
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if order is None:
                x, y = self.images[start:start + batch_size], self.labels[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            if flip:
                mirror = (torch.rand(len(x), generator=generator, device=rng_device) < 0.5).to(device)
                x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
            yield x, y

    def to(self, device: str | torch.device) -> Split:
        return Split(self.images.to(device), self.labels.to(device), self.source_index)


@dataclass
class Dataset:
    meta: DatasetMeta
    train: Split
    val: Split
    test: Split
    skipped: tuple[str, ...] = ()  # unreadable image files that were skipped

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise UserError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)


def known_datasets() -> list[str]:
    """Names `load_dataset` accepts; the last, "folder:PATH", is a pattern (PATH = a folder of class subfolders)."""
    return [*LOADERS, "folder:PATH"]


# --- subsets and splits ---------------------------------------------------------------------------------------------

def match_class(token: str, names: Sequence[str]) -> int:
    """The index of the class a user typed: its name in any case ("Airplane" = "airplane") or its index; a name wins
    over an index ("3" may be both). UserError naming the known classes otherwise. Every command and panel that
    takes class names from a user goes through here, so all match them the same way."""
    key = str(token).strip()
    lower = [n.lower() for n in names]
    if key.lower() in lower:
        return lower.index(key.lower())
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise UserError(f"unknown class {token!r}; the classes are: {', '.join(names)} "
                    f"(or their indices 0..{len(names) - 1})")


def _choose_classes(wanted: tuple[str, ...], names: tuple[str, ...]) -> list[int]:
    """Original indices of the chosen classes in the dataset's order (all when none are named)."""
    if not wanted:
        return list(range(len(names)))
    return sorted({match_class(w, names) for w in wanted})


def _shuffle_by_class(labels: np.ndarray, indices: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """`indices` grouped by class, each group in its own seeded random order (O(N log N): one sort, no class scans)."""
    if len(indices) == 0:
        return {}
    order = indices[np.argsort(labels[indices], kind="stable")]
    classes, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    return {int(c): np.random.default_rng([seed, int(c)]).permutation(g) for c, g in zip(classes, groups, strict=True)}


def _carve(groups: dict[int, np.ndarray], fraction: float) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Hold out `fraction` of each group (rounded half up); returns (held-out indices, what remains per group)."""
    held, rest = [], {}
    for c, g in groups.items():
        k = int(len(g) * fraction + 0.5)
        held.append(g[:k])
        rest[c] = g[k:]
    return np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64), rest


def load_dataset(cfg: DataConfig, device: str | torch.device = "cpu") -> Dataset:
    """Load, subset and split the dataset `cfg` names; every split lives on `device` as uint8 tensors."""
    name = cfg.name.strip()
    if name.lower().startswith("folder:"):
        arg = name[len("folder:"):].strip()
        if not arg:
            raise UserError("folder: needs a path, e.g. folder:~/pictures/pets (one subfolder per class)")
        loader, name = load_folder, f"folder:{Path(arg).expanduser().resolve()}"
    else:
        name = name.lower().replace("_", "-")
        if name not in LOADERS:
            raise UserError(f"unknown dataset {cfg.name!r}; known datasets: {', '.join(known_datasets())}")
        loader, arg = LOADERS[name], ""
    src = loader(cfg, arg)

    keep = _choose_classes(cfg.classes, src.class_names)
    in_keep = np.isin(src.labels, keep)
    if src.test_images is None:  # no official test set: carve one from everything with the fixed seed
        test_idx, rest = _carve(_shuffle_by_class(src.labels, np.arange(len(src.labels)), _TEST_SEED), _TEST_FRACTION)
        pool = np.sort(np.concatenate(list(rest.values())))
        test_images, test_labels = src.images, src.labels
    else:
        test_idx, pool = np.arange(len(src.test_labels)), np.arange(len(src.labels))
        test_images, test_labels = src.test_images, src.test_labels
    test_idx = test_idx[np.isin(test_labels[test_idx], keep)]
    pool = pool[in_keep[pool]]

    val_idx, rest = _carve(_shuffle_by_class(src.labels, pool, cfg.seed), cfg.val_fraction)
    if cfg.per_class:
        short = {c: len(g) for c, g in rest.items() if len(g) < cfg.per_class}
        if short:
            c, n = min(short.items(), key=lambda item: item[1])
            raise UserError(f"per_class={cfg.per_class} is more than the {n} training images of class "
                            f"{src.class_names[c]!r} (after holding out {cfg.val_fraction:.0%} for validation); "
                            f"use per_class <= {n}")
        rest = {c: g[:cfg.per_class] for c, g in rest.items()}
    train_idx = np.sort(np.concatenate(list(rest.values()))) if rest else np.zeros(0, np.int64)
    if len(train_idx) == 0:
        raise UserError(f"no training images left in {cfg.name!r} with classes={list(cfg.classes)}")

    remap = np.full(len(src.class_names), -1, np.int64)
    remap[keep] = np.arange(len(keep))
    channels = cfg.channels or src.images.shape[1]

    def make(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Split:
        x = torch.from_numpy(images[idx])  # fancy indexing copies, so the (possibly cached) source stays untouched
        if channels == 1 and x.shape[1] == 3:  # ITU-R 601 luma, as Pillow's convert("L")
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        x = resize(x, cfg.image_size)  # after subsetting: only the kept images are resized
        if channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1).contiguous()
        y = torch.from_numpy(remap[labels[idx]])
        return Split(x.to(device), y.to(device), torch.from_numpy(idx.astype(np.int64)))

    meta = DatasetMeta(name=name, class_names=tuple(src.class_names[c] for c in keep), channels=channels,
                       image_size=cfg.image_size)
    return Dataset(meta=meta, train=make(src.images, src.labels, train_idx),
                   val=make(src.images, src.labels, val_idx), test=make(test_images, test_labels, test_idx),
                   skipped=src.skipped)
