"""The Dataset tab at 70,000 images (MNIST's size): query + sort time, what a user waits for after Enter (filter, the
grid re-listed and its first frame; the whole list laid out), a saved view applied and "only the selection" of 20,000
images, and the scroll frame time of the virtual grid.

Synthetic 28x28 grey images and columns (a VAE's encoding is not what is measured). Prints the median of each.
Run: QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_dataset_browser.py
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtWidgets import QApplication

from core.latent.query import Columns
from explorer.panel_view import PanelView
from explorer.panels.dataset_browser import DatasetBrowserPanel
from explorer.selection import ImageSelection
from explorer.state import AppState

N = 70_000


def main() -> None:
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 1, 28, 28), dtype=np.uint8)
    cols = Columns(rng.integers(0, 10, N), rng.gamma(2.0, 0.008, N).astype(np.float32),
                   rng.gamma(3.0, 1.2, N).astype(np.float32))
    panel = DatasetBrowserPanel(PanelView(AppState()))
    panel.resize(1280, 800)
    panel.show()
    t = time.perf_counter()
    panel.set_data("train", images, cols, [str(i) for i in range(10)])
    app.processEvents()
    print(f"list {N:,} images: {1000 * (time.perf_counter() - t):.0f} ms (first screen included)")

    for query, sort in (("", 0), ("class 8 and error > 0.015", 2), ("kl < 3", 3), ("not class 1 or index <= 100", 0)):
        panel.query.setText(query)
        panel.sort_box.setCurrentIndex(sort)
        times = []
        for _ in range(7):
            panel.apply()
            times.append(panel.filter_ms)
        print(f"filter+sort {query or '(all)'!r:32} -> {len(panel.rows):6,} rows: {statistics.median(times):.2f} ms")

    def until_shown(action) -> tuple[float, float]:
        """ms until the first frame after `action`, and until every row is laid out (the scroll bar's full length)."""
        t = time.perf_counter()
        action()
        panel.grid.viewport().repaint()
        first = 1000 * (time.perf_counter() - t)
        last = panel.grid.thumbs.index(len(panel.rows) - 1)
        while len(panel.rows) and not panel.grid.visualRect(last).isValid():
            app.processEvents()
        return first, 1000 * (time.perf_counter() - t)

    for query in ("", "class 8 and error > 0.015"):
        panel.query.setText(query)
        first, whole = zip(*(until_shown(panel.apply) for _ in range(5)), strict=True)
        print(f"Enter on {query or '(all)'!r:29} -> {len(panel.rows):6,} rows: first frame "
              f"{statistics.median(first):.1f} ms, all laid out {statistics.median(whole):.1f} ms")
    panel.saved_views.save("bench view")
    panel.query.setText("")
    panel.apply()
    first, whole = zip(*(until_shown(lambda: panel.saved_views.apply("bench view")) for _ in range(5)), strict=True)
    print(f"saved view applied -> {len(panel.rows):6,} rows: first frame {statistics.median(first):.1f} ms, "
          f"all laid out {statistics.median(whole):.1f} ms")
    panel.saved_views.delete("bench view")
    picked = np.sort(rng.choice(N, 20_000, replace=False))
    panel.view.set_selection(ImageSelection("latent map", ("train",) * len(picked), picked, cols.labels[picked],
                                            np.zeros((len(picked), 0), np.float32)))
    panel.query.setText("error > 0.015")
    first, whole = zip(*(until_shown(lambda: panel.only_selection.setChecked(not panel.only_selection.isChecked()))
                         for _ in range(6)), strict=True)
    print(f"'only the selection' (20,000 images) toggled: first frame {statistics.median(first):.1f} ms, "
          f"all laid out {statistics.median(whole):.1f} ms")
    panel.only_selection.setChecked(False)

    panel.query.setText("")
    panel.sort_box.setCurrentIndex(0)
    panel.apply()
    bar = panel.grid.verticalScrollBar()
    app.processEvents()
    frames = []
    for k in range(60):      # jumps through the whole list (new thumbnails each frame) as a fast flick would
        bar.setValue(int(bar.maximum() * k / 59))
        t = time.perf_counter()
        panel.grid.viewport().repaint()
        frames.append(1000 * (time.perf_counter() - t))
    steady = []
    for _ in range(60):      # small steps (mostly cached thumbnails), as a wheel scroll
        bar.setValue(bar.value() - 3 * bar.singleStep())
        t = time.perf_counter()
        panel.grid.viewport().repaint()
        steady.append(1000 * (time.perf_counter() - t))
    print(f"scroll frame (jump to new rows): median {statistics.median(frames):.1f} ms, max {max(frames):.1f} ms")
    print(f"scroll frame (wheel steps):      median {statistics.median(steady):.1f} ms, max {max(steady):.1f} ms")
    print(f"thumbnails made: {panel.grid.thumbs.made:,} of {N:,}")
    panel.shutdown()


if __name__ == "__main__":
    main()
