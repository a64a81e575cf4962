"""The dashboard draws every step record's gradient norm (the model optimiser's, before clipping) beside the learning
rate, on an axis of its own (never on the loss axis), and says when train.grad_skip skipped steps."""

from __future__ import annotations

import dataclasses

import numpy as np

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.training.events import StepMetrics
from core.training.trainer import Trainer


def test_dashboard_plots_the_gradient_norm_on_its_own_axis(qtbot):
    from explorer.panels.dashboard import RunDashboard

    data = DataConfig("digits", image_size=16, per_class=10)
    cfg = Config(data, VAEConfig(latent_dim=4, width=8), TrainConfig(epochs=2, batch_size=20, log_every=1,
                                                                     device="cpu", seed=3))
    events = list(Trainer(cfg, dataset=load_dataset(data)).run())
    steps = [ev for ev in events if isinstance(ev, StepMetrics)]
    assert len(steps) >= 8 and all(ev.grad_norm is not None and ev.grad_norm > 0 for ev in steps)
    dash = RunDashboard()
    qtbot.addWidget(dash)
    dash.resize(1100, 750)
    dash.show()
    for ev in events:
        dash.show_event(ev)
    dash.finish()
    lr_plot, loss_plot = dash.plots["lr"], dash.plots["loss"]
    series = lr_plot.series["grad_norm"]
    np.testing.assert_allclose(series.ys, [ev.grad_norm for ev in steps])
    np.testing.assert_array_equal(series.xs, [ev.step for ev in steps])
    assert "grad_norm" in lr_plot._on_right                     # its own axis, not the learning rate's
    assert "grad_norm" not in loss_plot.series and "grad_norm" not in dash.plots["terms"].series
    assert "skipped" not in lr_plot.title and "grad norm" in lr_plot.title
    # A run whose grad_skip skipped spikes says how many (the count of the newest record).
    dash.show_event(dataclasses.replace(steps[-1], step=steps[-1].step + 1, skipped_steps=2))
    assert "(2 skipped)" in lr_plot.title
    dash.clear()
    assert lr_plot.title == "Learning rate" and len(lr_plot.series["grad_norm"].ys) == 0
    # a record from before grad_norm was logged (None) draws nothing on a new dashboard: no empty right axis
    old = RunDashboard()
    qtbot.addWidget(old)
    old.show_event(dataclasses.replace(steps[0], grad_norm=None))
    assert "grad_norm" not in old.plots["lr"].series and old.plots["lr"].title == "Learning rate"
    assert len(old.plots["lr"].series["lr"].ys) == 1


def test_the_lr_plots_legend_stays_clear_of_the_grad_norm_axis(qtbot):
    """In the window at 1024, 1400 and 1920 px wide, the "LR, grad norm" plot's legend lies inside the plot area and
    covers neither the right (grad_norm) axis, its inward ticks included, nor its label."""
    from explorer.main_window import MainWindow
    from explorer.state import AppState

    win = MainWindow(AppState())
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    panel = win.train_panel
    win.tabs.setCurrentWidget(panel)
    for step in range(1, 40):
        panel.handle_event(StepMetrics(step, 1, {"loss": 40.0 - step / 2, "recon": 35.0, "kl": 5.0}, 2e-3, 900.0,
                                       10.0, step / 40, grad_norm=25.0 / step ** 0.3))
    plot = panel.dashboard.plots["lr"]
    for width in (1024, 1400, 1920):
        win.resize(width, 900)
        qtbot.waitUntil(lambda w=width: win.width() == w, timeout=2000)
        panel.dashboard.redraw()
        qtbot.wait(50)
        legend = plot._legend.sceneBoundingRect()
        view = plot.getPlotItem().vb.sceneBoundingRect()
        axis = plot.getPlotItem().getAxis("right")
        label = axis.label.mapRectToScene(axis.label.boundingRect())
        assert axis.isVisible() and "grad_norm" in axis.labelString()
        assert plot._legend.isVisible() and view.contains(legend), (width, legend, view)
        assert not legend.intersects(axis.sceneBoundingRect()), (width, legend, axis.sceneBoundingRect())
        assert not legend.intersects(label), (width, legend, label)
