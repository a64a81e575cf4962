"""Dataset load times: digits on first load (no cache) and cached, at the sizes the presets use; a synthetic folder.

Run: .venv/bin/python bench/bench_data.py   (prints numbers; never imported by tests)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.config import DataConfig
from core.data import sources as data_sources
from core.data.datasets import load_dataset


def timed(label: str, fn, repeat: int = 1) -> None:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    print(f"{label:<45s} {best * 1000:8.1f} ms")


def main() -> None:
    for size in (16, 32):
        data_sources._digits_arrays.cache_clear()
        cfg = DataConfig(image_size=size)
        timed(f"digits {size}x{size}, first load", lambda cfg=cfg: load_dataset(cfg))
        timed(f"digits {size}x{size}, cached", lambda cfg=cfg: load_dataset(cfg), repeat=5)
    timed("digits 16x16, classes=(3,5), per_class=100", lambda: load_dataset(DataConfig(classes=("3", "5"),
                                                                                          per_class=100)), repeat=5)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for c in range(10):
            (Path(tmp) / f"class{c}").mkdir()
            for i in range(200):
                pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(Path(tmp) / f"class{c}" / f"{i}.jpg")
        timed("folder: 2000 JPEGs 128x96 -> 32x32", lambda: load_dataset(DataConfig(name=f"folder:{tmp}",
                                                                                    image_size=32)))


if __name__ == "__main__":
    main()
