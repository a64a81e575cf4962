"""The live plots of a training run: losses, recon and KL, validation, learning rate, KL per dimension, the sample
and reconstruction previews, and a third row that appears for the curves only some models log (a hierarchical VAE's
KL per layer, a VAE-GAN's adversarial curves, a perceptual loss).

It appends to the plots' buffers and draws on `redraw()`; the dashboard decides when (its redraw timer)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QTabWidget, QWidget

from core.training.events import EpochSummary, Preview
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.live_plot import BarPlot, LivePlot

# Step metrics with a plot of their own: a VAE-GAN's discriminator and generator losses, and its adaptive weight;
# a VAE's perceptual loss (on its own axis: a few units beside recon's tens of nats).
ROW_3_CURVES = {"d_loss": "adversarial", "g_adv": "adversarial", "adv_weight": "adv_weight",
                "perceptual": "perceptual"}
ROW_3 = ("kl_layers", "adversarial", "adv_weight", "perceptual")   # shown only for the runs that log their curves
TILE_MIN_WIDTH = 200    # px a plot needs for its title and axis labels
TILE_MIN_HEIGHT = 140
LOG_SCALE_PLOTS = ("loss", "terms", "val", "kl_layers")
# The gradient norm (before clipping) shares the learning rate's plot on an axis of its own on the right: both say how
# big the steps are, and a spike (or train.grad_skip skipping one) shows beside the schedule that caused it.
LR_TITLE = "Learning rate"
GRAD_NORM = "grad_norm"


class TrainingPlots(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._next_redraw = 0       # where the next limited redraw starts looking (round robin)
        self.plots: dict[str, LivePlot] = {
            "loss": LivePlot("Loss (nats/image)"),
            "terms": LivePlot("Recon and KL"),
            "val": LivePlot("Validation loss", x_label="epoch"),
            "lr": LivePlot(LR_TITLE),
            "kl_layers": LivePlot("KL per layer"),
            "adversarial": LivePlot("Adversarial (hinge)"),
            "adv_weight": LivePlot("Adaptive adversarial weight"),
            "perceptual": LivePlot("Perceptual loss"),
        }
        self.plots["loss"].add_curve("loss", smooth=True)
        self.plots["terms"].add_curve("recon", smooth=True)
        self.plots["terms"].add_curve("kl", smooth=True, right_axis=True)   # a few nats beside recon's tens
        self.plots["val"].add_curve("val loss")
        self.plots["val"].add_curve("train loss")
        self.plots["lr"].add_curve("lr")
        self.plots["adversarial"].add_curve("d_loss", smooth=True)
        self.plots["adversarial"].add_curve("g_adv", smooth=True)
        self.plots["adv_weight"].add_curve("adv_weight", smooth=True)
        self.plots["perceptual"].add_curve("perceptual", smooth=True)
        # The learning rate spans decades under schedules, and a constant rate would sit on a ±0.5 axis otherwise.
        self.plots["lr"].set_log_y(True)
        self.kl_bars = BarPlot("KL per dimension (val)")
        self.previews = self._build_previews()
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self.columns = 3
        for key in ROW_3:          # placed by show_row_3 when a run logs their curves
            self.plots[key].setParent(self)
        self.show_row_3(set())

    def tiles(self) -> list[QWidget]:
        """The plots in their reading order: loss, recon and KL, validation, KL per dimension, learning rate, the
        previews, then the third row's plots that are shown."""
        shown = [self.plots[k] for k in ROW_3 if k in self.row_3_shown]
        return [self.plots["loss"], self.plots["terms"], self.plots["val"], self.kl_bars, self.plots["lr"],
                self.previews, *shown]

    def columns_for(self, width: int, height: int) -> int:
        """Three columns while each gets TILE_MIN_WIDTH; two when narrower (a 1024-px window with the Models dock
        open leaves the plots ~430 px: three 140-px tiles cut off their titles and axis labels) and the rows
        that makes still get TILE_MIN_HEIGHT each."""
        rows_of_two = -(-len(self.tiles()) // 2)
        if width >= 3 * TILE_MIN_WIDTH or height < rows_of_two * TILE_MIN_HEIGHT:
            return 3
        return 2

    def _place(self, columns: int) -> None:
        for tile in (*self.tiles(), *(self.plots[k] for k in ROW_3)):
            self._grid.removeWidget(tile)
        tiles = self.tiles()
        for i, tile in enumerate(tiles):
            self._grid.addWidget(tile, i // columns, i % columns)
        rows = -(-len(tiles) // columns)
        for i in range(max(self._grid.columnCount(), 3)):
            self._grid.setColumnStretch(i, 1 if i < columns else 0)
        for i in range(max(self._grid.rowCount(), rows)):
            self._grid.setRowStretch(i, 1 if i < rows else 0)
        self.columns = columns

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        columns = self.columns_for(event.size().width(), event.size().height())
        if columns != self.columns:
            self._place(columns)

    def _build_previews(self) -> QTabWidget:
        previews = QTabWidget()
        self.samples_grid = ImageGrid()
        self.samples_grid.setToolTip("Class-conditional samples from the latest snapshot (one row per class)")
        self.recon_grid = ImageGrid()
        self.recon_grid.setToolTip("Validation images (top) and their reconstructions (bottom)")
        previews.addTab(self.samples_grid, "Samples")
        previews.addTab(self.recon_grid, "Reconstructions")
        # Equal cells: the previews must not grow at the plots' expense (an image grid would like to be large).
        previews.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        return previews

    # ---- data -----------------------------------------------------------------------------------------------------
    def append_step(self, step: int, metrics: Mapping[str, float], lr: float, *, epoch: int, time: float,
                    grad_norm: float | None = None, skipped_steps: int = 0) -> None:
        at = {"epoch": epoch, "time": time}
        if grad_norm is not None:          # None: a record from before it was logged
            self._append_grad_norm(step, grad_norm, skipped_steps, at)
        if "loss" in metrics:
            self.plots["loss"].append("loss", step, float(metrics["loss"]), **at)
        for key in ("recon", "kl"):
            if key in metrics:
                self.plots["terms"].append(key, step, float(metrics[key]), **at)
        for key, value in metrics.items():
            if key.startswith("kl_"):     # a hierarchical VAE's KL of each layer (kl_z1, kl_z2, ...)
                plot = "kl_layers"
                if key not in self.plots[plot].series:
                    self.plots[plot].add_curve(key, smooth=True)
            elif key in ROW_3_CURVES:
                plot = ROW_3_CURVES[key]
            else:
                continue
            if plot not in self.row_3_shown:
                self.show_row_3(self.row_3_shown | {plot})
            self.plots[plot].append(key, step, float(value), **at)
        self.plots["lr"].append("lr", step, float(lr), **at)

    def _append_grad_norm(self, step: int, grad_norm: float, skipped_steps: int, at: Mapping[str, float]) -> None:
        plot = self.plots["lr"]
        if GRAD_NORM not in plot.series:
            plot.add_curve(GRAD_NORM, smooth=True, right_axis=True)
        plot.append(GRAD_NORM, step, float(grad_norm), **at)
        skipped = f" ({skipped_steps:,} skipped)" if skipped_steps else ""
        title = f"LR, grad norm{skipped}"   # short: a long title widens the plot past its cell and hides the right axis
        if plot.title != title:
            plot.title = title
            plot.apply_palette()           # sets the title in the palette's colour

    def append_epoch(self, ev: EpochSummary, *, time: float) -> None:
        at = {"step": ev.step, "time": time}
        if "loss" in ev.val:
            self.plots["val"].append("val loss", ev.epoch, float(ev.val["loss"]), **at)
        if "loss" in ev.train:
            self.plots["val"].append("train loss", ev.epoch, float(ev.train["loss"]), **at)
        if ev.kl_per_dim is not None:
            self.kl_bars.set_values(ev.kl_per_dim)

    def show_preview(self, ev: Preview, class_names: list[str]) -> None:
        labels = np.asarray(ev.sample_labels)
        classes = list(dict.fromkeys(labels.tolist()))    # in order of appearance
        per_class = max(1, len(labels) // max(1, len(classes)))
        names = [class_names[c] if c < len(class_names) else str(c) for c in classes]
        self.samples_grid.set_images(ev.samples, columns=per_class, row_labels=names)
        if ev.originals is not None and ev.reconstructions is not None:
            both = np.concatenate([ev.originals, ev.reconstructions])
            self.recon_grid.set_images(both, columns=len(ev.originals), row_labels=["val", "recon"])

    def set_time_origin(self, origin: float) -> None:
        """Wall time on the x axis counts from here (a run's start; a resumed run: this start)."""
        for plot in self.plots.values():
            plot.time_origin = origin

    def clear(self) -> None:
        for plot in self.plots.values():
            plot.clear_data()
        self.plots["lr"].title = LR_TITLE
        self.plots["lr"].apply_palette()
        for name in list(self.plots["kl_layers"].series):
            self.plots["kl_layers"].remove_curve(name)   # the next run may have other layers, or none
        self.show_row_3(set())
        self.kl_bars.clear_data()
        self.samples_grid.clear()
        self.recon_grid.clear()

    # ---- drawing --------------------------------------------------------------------------------------------------
    def redraw(self, limit: int | None = None) -> bool:
        """Push what changed since the last call to the plots: all of them, or at most `limit` (the ones waiting
        longest first). True while a plot is still waiting.

        Why a limit: Qt paints every plot updated in one event-loop pass in one go, and while training holds the GIL
        each plot's paint waits for it at every Python call (axes, legend, curves): six plots redrawn together stalled
        the event loop 50-90 ms (bench/bench_gui_responsiveness.py). One plot per tick keeps a stall to one plot's
        paint, and each plot still redraws several times a second."""
        drawables = [*self.plots.values(), self.kl_bars]
        n = len(drawables)
        start, drawn = self._next_redraw, 0
        for i in range(n):
            plot = drawables[(start + i) % n]
            if not plot.dirty:
                continue
            if limit is not None and drawn >= limit:
                return True
            plot.redraw()
            drawn += 1
            self._next_redraw = (start + i + 1) % n
        return False

    def show_row_3(self, shown: set[str]) -> None:
        """Show these plots of the third row after the others (the rest hidden and out of the grid; the row takes no
        room when none is shown)."""
        self.row_3_shown = shown
        for key in ROW_3:
            self.plots[key].setVisible(key in shown)
        self._place(self.columns_for(self.width(), self.height()) if self.isVisible() else self.columns)

    def set_log_scale(self, on: bool) -> None:
        for key in LOG_SCALE_PLOTS:
            self.plots[key].set_log_y(on)
