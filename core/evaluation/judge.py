"""The judge: a small CNN trained on a dataset's real training images, cached per dataset.

It answers two questions about a generative model that did not train it: do class-conditional samples look like the
class they were asked for (`predict`, for conditional accuracy), and how far is the distribution of samples from the
real one (`features`, the penultimate layer, for the FID-style score in evaluate.py).

Training takes a few seconds on digits; the weights are cached under `cache_dir("classifiers")` in a safetensors file
(no pickle) named by the dataset and a hash of its training data, so any change to the data trains a new judge.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from core.files import atomic_write
from core.paths import cache_dir

# Bump when the architecture or the training recipe changes: old cache entries are then ignored.
RECIPE = "cnn-v1"
FEATURES = 128


class _Net(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        # Adaptive pooling makes the same net fit 16, 28, 32 or 64 px images.
        self.body = nn.Sequential(*block(channels, width), nn.MaxPool2d(2), *block(width, 2 * width), nn.MaxPool2d(2),
                                  *block(2 * width, 2 * width), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Linear(2 * width * 16, FEATURES), nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURES, max(num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Classifier:
    """A trained judge in eval mode. Inputs: images (N, C, H, W), uint8 or float in [0, 1], any device."""

    def __init__(self, net: _Net, *, channels: int, image_size: int, num_classes: int, test_accuracy: float,
                 path: Path | None = None) -> None:
        self.net = net.eval()
        self.channels, self.image_size, self.num_classes = channels, image_size, num_classes
        self.test_accuracy = test_accuracy
        self.path = path

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _batches(self, x: torch.Tensor, batch: int = 1024):
        if x.ndim != 4 or x.shape[1] != self.channels or x.shape[-1] != self.image_size:
            raise ValueError(f"the classifier judges {self.channels}x{self.image_size}x{self.image_size} images, "
                             f"got shape {tuple(x.shape)}")
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch].to(self.device)
            yield chunk.float() / 255.0 if chunk.dtype == torch.uint8 else chunk.float()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels, int64 on the CPU."""
        return torch.cat([self.net(b).argmax(1).cpu() for b in self._batches(x)])

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> np.ndarray:
        """Penultimate-layer features (N, 128), float64 numpy."""
        return torch.cat([self.net.body(b).double().cpu() for b in self._batches(x)]).numpy()

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self.predict(images) == labels.cpu()).float().mean()) if len(labels) else float("nan")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-60:].strip("_") or "dataset"


def data_key(meta: Any, dataset: Any) -> str:
    """Hash of what the judge learns from: dataset metadata, training images and labels, and the recipe."""
    h = hashlib.sha256()
    h.update(RECIPE.encode())
    h.update(json.dumps(meta.to_dict(), sort_keys=True).encode())
    h.update(dataset.train.images.cpu().contiguous().numpy().tobytes())
    h.update(dataset.train.labels.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random translations by up to `max_shift` pixels (pad with zeros and crop): cheap, label-preserving."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w]


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, *, test_images: torch.Tensor,
                     test_labels: torch.Tensor, seed: int = 0, batch_size: int = 64, min_steps: int = 300,
                     progress: Callable[[int, int], None] | None = None) -> Classifier:
    """Train a judge on uint8 images (N, C, H, W); its accuracy on the test images is kept with it."""
    channels, size = int(images.shape[1]), int(images.shape[-1])
    device = images.device
    # Leave the global RNG untouched: the judge must not change what a caller's seeded code does next.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _Net(channels, num_classes).to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps_per_epoch = max(1, math.ceil(len(images) / batch_size))
    epochs = max(3, min(30, math.ceil(min_steps / steps_per_epoch)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    max_shift = max(1, size // 16)
    net.train()
    with torch.enable_grad():  # callers may be inside no_grad (evaluation)
        _fit(net, opt, sched, images, labels, epochs, batch_size, gen, max_shift, progress)
    clf = Classifier(net, channels=channels, image_size=size, num_classes=num_classes, test_accuracy=float("nan"))
    clf.test_accuracy = clf.accuracy(test_images, test_labels)
    return clf


def _fit(net: _Net, opt: torch.optim.Optimizer, sched: Any, images: torch.Tensor, labels: torch.Tensor, epochs: int,
         batch_size: int, gen: torch.Generator, max_shift: int, progress: Callable[[int, int], None] | None) -> None:
    device = images.device
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen).to(device)
        for start in range(0, len(images), batch_size):
            idx = order[start:start + batch_size]
            x = _shift(images[idx].float() / 255.0, gen, max_shift)
            loss = F.cross_entropy(net(x), labels[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if progress is not None:
            progress(epoch + 1, epochs)


def get_classifier(meta: Any, dataset: Any, *, progress: Callable[[int, int], None] | None = None) -> Classifier:
    """The judge for this dataset: loaded from the cache, or trained on `dataset.train` and cached."""
    key = data_key(meta, dataset)
    path = cache_dir("classifiers") / f"{_slug(meta.name)}-{key[:16]}.safetensors"
    device = dataset.train.images.device
    if path.is_file():
        try:
            return _load(path, meta, device)
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError):  # truncated or foreign: retrain
            pass
    test = dataset.test if len(dataset.test) else dataset.val
    clf = train_classifier(dataset.train.images, dataset.train.labels, meta.num_classes, test_images=test.images,
                           test_labels=test.labels, progress=progress)
    _save(clf, path, meta, key)
    clf.path = path
    return clf


def _save(clf: Classifier, path: Path, meta: Any, key: str) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in clf.net.state_dict().items()}
    info = {"recipe": RECIPE, "key": key, "meta": json.dumps(meta.to_dict()), "test_accuracy": repr(clf.test_accuracy),
            "channels": str(clf.channels), "image_size": str(clf.image_size), "num_classes": str(clf.num_classes)}
    # Atomic: a concurrent reader (another process judging on the same dataset) sees the old file or the new one.
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=info))


def _load(path: Path, meta: Any, device: torch.device) -> Classifier:
    with safe_open(str(path), framework="pt") as f:
        info = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if info.get("recipe") != RECIPE:
        raise ValueError("stale recipe")
    channels, size, n = int(info["channels"]), int(info["image_size"]), int(info["num_classes"])
    net = _Net(channels, n)
    net.load_state_dict(state)
    return Classifier(net.to(device), channels=channels, image_size=size, num_classes=n,
                      test_accuracy=float(info["test_accuracy"]), path=path)
