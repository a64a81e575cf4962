"""The widget gallery (pyqtgraph's examples are the model): each pure widget standalone on synthetic data, so a
visual change is checked in seconds without a model, a dataset or a training run.

    python -m explorer.gallery                  a window: the list of examples on the left, the chosen one beside it
    python -m explorer.gallery scatter          ... opened on one example
    python -m explorer.gallery --shot NAME out.png   save a screenshot of one example (QT_QPA_PLATFORM=offscreen works)
    python -m explorer.gallery --list           the examples' names

Examples: the latent map's scatter at dataset scale (70,000 points in ten clusters), a VQ-VAE's codebook map, the
image grid, live plots fed by a timer, the selection grid, and the training dashboard fed a fake event stream (steps,
epochs, previews). Each example is a function returning its widget; a live one's feed is a QTimer child of the widget
(it stops with it).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QListWidget, QVBoxLayout, QWidget

CLASSES = tuple(f"class {k}" for k in range(10))


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    build: Callable[[], QWidget]
    settle_ms: int = 300          # how long a screenshot lets it draw (and a live feed run) first


# ---- synthetic data ------------------------------------------------------------------------------------------------
def synthetic_images(labels: np.ndarray, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (N, size, size, 3): class k is a bright bar at angle 18k degrees in the class's hue, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    angles = np.deg2rad(18.0 * np.asarray(labels))[:, None, None]
    dist = np.abs(xx[None] * np.sin(angles) - yy[None] * np.cos(angles))
    bar = np.clip(1.5 - dist, 0, 1) * (np.hypot(xx, yy)[None] < size * 0.42)
    bar = np.clip(bar + rng.normal(0, 0.08, bar.shape), 0, 1)
    hue = np.asarray(labels)[:, None] / 10.0
    rgb = 0.55 + 0.45 * np.cos(2 * np.pi * (hue + np.array([[0.0, 1 / 3, 2 / 3]])))   # (N, 3) a colour per class
    return (bar[..., None] * rgb[:, None, None, :] * 255).astype(np.uint8)


def clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) float32 points in ten Gaussian clusters on a ring, and their int64 labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centres = np.stack([np.cos(np.arange(10) * 0.628), np.sin(np.arange(10) * 0.628)], 1) * 6.0
    xy = centres[labels] + rng.normal(0, 1.0, (n, 2)) * (0.6 + 0.08 * labels[:, None])
    return xy.astype(np.float32), labels.astype(np.int64)


def _feed(owner: QWidget, interval_ms: int, tick: Callable[[int], bool]) -> QTimer:
    """A timer owned by the widget calling tick(i) with i = 0, 1, ... until it returns False."""
    timer = QTimer(owner)
    timer.setInterval(interval_ms)
    count = [0]

    def step() -> None:
        if not tick(count[0]):
            timer.stop()
        count[0] += 1

    timer.timeout.connect(step)
    timer.start()
    return timer


# ---- the examples --------------------------------------------------------------------------------------------------
def scatter_example(n: int = 70_000) -> QWidget:
    from scipy.spatial import cKDTree

    from explorer.widgets.latent_scatter import LatentScatter

    xy, labels = clusters(n)
    scatter = LatentScatter()
    scatter.set_points(xy, labels, CLASSES, cKDTree(xy))
    scatter.set_title(f"{n:,} points in 10 classes")
    return scatter


def codebook_example(k: int = 512) -> QWidget:
    """A VQ-VAE's codebook map: k codes in ten class clusters, sized by a synthetic use, every 16th code dead."""
    import pyqtgraph as pg

    from explorer.widgets.codebook_scatter import CodebookScatter
    from explorer.widgets.latent_scatter import class_colour

    xy, labels = clusters(k, seed=1)
    cells = np.random.default_rng(1).gamma(1.5, 40.0, k).round()
    cells[::16] = 0
    scatter = CodebookScatter()
    scatter.set_codes(xy, [pg.mkBrush(class_colour(int(c), 10)) for c in labels],
                      5 + 19 * np.sqrt(cells / cells.max()), cells == 0)
    scatter.set_legend([(name, pg.mkBrush(class_colour(i, 10))) for i, name in enumerate(CLASSES)])
    scatter.set_title(f"{k} code vectors, sized by use, {int((cells == 0).sum())} dead (crosses)")
    scatter.mark(int(cells.argmax()))
    return scatter


def image_grid_example() -> QWidget:
    from explorer.widgets.image_grid import ImageGrid

    labels = np.repeat(np.arange(10), 10)
    grid = ImageGrid()
    grid.set_images(synthetic_images(labels), columns=10, row_labels=list(CLASSES))
    return grid


def live_plot_example() -> QWidget:
    from explorer.widgets.live_plot import LivePlot

    plot = LivePlot("loss")
    for name in ("loss", "recon", "kl"):
        plot.add_curve(name, smooth=name == "loss")
    rng = np.random.default_rng(0)
    start = time.time()

    def tick(i: int) -> bool:
        for s in range(i * 20 + 1, i * 20 + 21):       # 20 steps a tick: a fast run
            recon = 60 * math.exp(-s / 400) + 30 + rng.normal(0, 1.5)
            kl = 12 * (1 - math.exp(-s / 300)) + rng.normal(0, 0.3)
            for name, value in (("loss", recon + kl), ("recon", recon), ("kl", kl)):
                plot.append(name, float(s), value, epoch=s / 100, time=start + s / 50)
        plot.redraw()
        return i < 150

    for i in range(10):       # something to see at once
        tick(i)
    _feed(plot, 40, lambda i: tick(i + 10))
    return plot


def selection_grid_example() -> QWidget:
    from explorer.widgets.selection_grid import SelectionGrid

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 500)
    images = synthetic_images(labels, seed=1)
    errors = rng.gamma(2.0, 0.01, 500).astype(np.float32)
    grid = SelectionGrid()
    grid.set_selection(np.arange(0, 500, 4), lambda rows: images[rows], labels, errors, CLASSES)
    return grid


def dashboard_example(steps: int = 600, per_epoch: int = 60) -> QWidget:
    """The training dashboard fed a fake run: a step every tick, an epoch summary and a preview every epoch."""
    from core.training.events import EpochSummary, Preview, RunEnded, RunStarted, StepMetrics
    from explorer.panels.dashboard import RunDashboard

    dash = RunDashboard()
    rng = np.random.default_rng(2)
    start = time.time()
    dash.show_event(RunStarted(None, {"train": {"epochs": steps // per_epoch}}, {"class_names": list(CLASSES)},
                               "cpu (fake events)", steps, per_epoch, time=start))

    def tick(i: int) -> bool:
        for s in range(i * 6 + 1, min(steps, i * 6 + 6) + 1):
            epoch = (s - 1) // per_epoch + 1
            recon = 60 * math.exp(-s / 150) + 30 + rng.normal(0, 1.0)
            kl = 12 * (1 - math.exp(-s / 100)) + rng.normal(0, 0.2)
            dash.show_event(StepMetrics(s, epoch, {"loss": recon + kl, "recon": recon, "kl": kl}, 1e-3, 2400.0,
                                        (steps - s) / 50, s / steps, time=start + s / 50))
            if s % per_epoch == 0:
                val = {"loss": recon + kl + 2, "recon": recon + 1.5, "kl": kl + 0.5, "elbo": -(recon + kl + 2)}
                dash.show_event(EpochSummary(epoch, s, {"loss": recon + kl}, val, True, s / 50, time=start + s / 50))
                labels = np.repeat(np.arange(10), 4)
                dash.show_event(Preview(epoch, s, synthetic_images(labels, seed=epoch), labels))
        if i * 6 + 6 >= steps:
            dash.show_event(RunEnded("completed", "all epochs done (fake events)", steps, steps // per_epoch, -88.0,
                                     time=start + steps / 50))
            return False
        return True

    for i in range(30):       # a few epochs at once, the rest live
        tick(i)
    _feed(dash, 30, lambda i: tick(i + 30))
    return dash


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example("scatter", "Latent scatter, 70,000 points", "The latent map's scatter at dataset scale: ten Gaussian "
            "clusters; zoomed out it draws the density image, zoom in to get the points back; the legend toggles "
            "classes.", scatter_example, settle_ms=600),
    Example("codebook", "Codebook map, 512 codes", "A VQ-VAE's latent map: one point per code vector, its size "
            "the cells that use it, its colour the class using it most, dead codes as red crosses, the clicked code "
            "ringed (hover: the code's index).", codebook_example),
    Example("image-grid", "Image grid", "Pixel-exact cells (nearest-neighbour by a whole factor) with row labels: "
            "100 synthetic images, one row per class.", image_grid_example),
    Example("live-plot", "Live plot", "Curves fed 20 steps per 40 ms tick into preallocated buffers and redrawn "
            "from the timer; 'loss' is smoothed with its raw values faint behind.", live_plot_example),
    Example("selection-grid", "Selection grid", "A selection of 125 images with class and error captions, "
            "sortable; the hand-off buttons below.", selection_grid_example),
    Example("dashboard", "Training dashboard", "The Train tab's dashboard fed a fake event stream: steps, epoch "
            "summaries, sample previews, then the run's end.", dashboard_example, settle_ms=800),
)}


def stop_feeds(widget: QObject) -> None:
    """Stop an example's live feeds (and any other timer it holds)."""
    for timer in widget.findChildren(QTimer):
        timer.stop()


class Gallery(QWidget):
    """The list of examples and the chosen one beside it (built when chosen; the previous one is closed)."""

    def __init__(self, first: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("VAE Explorer: widget gallery")
        self.names = QListWidget()
        for e in EXAMPLES.values():
            self.names.addItem(e.title)
        self.names.setFixedWidth(220)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.area = QVBoxLayout()
        right = QVBoxLayout()
        right.addWidget(self.description)
        right.addLayout(self.area, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(self.names)
        lay.addLayout(right, 1)
        self.current: QWidget | None = None
        self.names.currentRowChanged.connect(self.open_row)
        self.names.setCurrentRow(list(EXAMPLES).index(first) if first in EXAMPLES else 0)
        self.resize(1100, 720)

    def open_row(self, row: int) -> None:
        example = list(EXAMPLES.values())[row]
        if self.current is not None:
            stop_feeds(self.current)
            self.current.setParent(None)
            self.current.deleteLater()
        self.description.setText(f"<b>{example.title}</b> ({example.name}): {example.description}")
        self.current = example.build()
        self.area.addWidget(self.current)

    def closeEvent(self, event) -> None:
        if self.current is not None:
            stop_feeds(self.current)
        super().closeEvent(event)


def shot(name: str, path: str, app: QApplication, size: tuple[int, int] = (900, 620)) -> None:
    """Save a PNG of example `name` as it looks after its settle time."""
    example = EXAMPLES[name]
    widget = example.build()
    widget.resize(*size)
    widget.show()
    deadline = time.monotonic() + example.settle_ms / 1000
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    stop_feeds(widget)
    app.processEvents()
    ok = widget.grab().save(path, "PNG")
    widget.close()
    if not ok:
        raise OSError(f"could not write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.gallery", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="the example to open first: " + ", ".join(EXAMPLES))
    parser.add_argument("--shot", nargs=2, metavar=("NAME", "PNG"), help="save a screenshot of one example and exit")
    parser.add_argument("--list", action="store_true", help="print the examples' names and exit")
    args = parser.parse_args(argv)
    if args.list:
        for e in EXAMPLES.values():
            print(f"{e.name:16} {e.title}")
        return 0
    for name in (args.name, args.shot[0] if args.shot else None):
        if name is not None and name not in EXAMPLES:
            print(f"gallery: error: unknown example {name!r}; choose one of: {', '.join(EXAMPLES)}", file=sys.stderr)
            return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    if args.shot:
        try:
            shot(args.shot[0], args.shot[1], app)
        except OSError as e:
            print(f"gallery: error: {e}; choose a writable folder", file=sys.stderr)
            return 2
        print(args.shot[1])
        return 0
    gallery = Gallery(args.name)
    gallery.show()
    gallery.raise_()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
