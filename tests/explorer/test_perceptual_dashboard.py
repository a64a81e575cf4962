"""The dashboard draws a VAE's perceptual loss on a plot of its own, shown only while a run logs it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.training.events import StepMetrics
from core.training.trainer import Trainer

OUT = Path(os.environ["VAE_EXPLORER_TEST_SHOTS"])  # under the session's test home (tests/conftest.py)


def test_dashboard_draws_the_perceptual_loss_of_a_run_that_logs_it(qtbot):
    from explorer.panels.dashboard import RunDashboard

    data = DataConfig("digits", image_size=16, per_class=10)
    cfg = Config(data, VAEConfig(latent_dim=4, width=8, perceptual="fft"),
                 TrainConfig(epochs=1, batch_size=20, log_every=1, device="cpu", seed=2))
    events = list(Trainer(cfg, dataset=load_dataset(data)).run())
    dash = RunDashboard()
    qtbot.addWidget(dash)
    dash.resize(1100, 750)
    dash.show()
    assert not dash.plots["perceptual"].isVisible()
    for ev in events:
        dash.show_event(ev)
    dash.finish()
    qtbot.wait(20)    # let the grid lay the newly shown row out before reading geometry
    steps = [ev for ev in events if isinstance(ev, StepMetrics)]
    plot = dash.plots["perceptual"]
    assert plot.isVisible() and not dash.plots["adversarial"].isVisible()
    np.testing.assert_allclose(plot.series["perceptual"].ys, [e.metrics["perceptual"] for e in steps])
    # It sits at the left of the third row (not in the column an adversarial plot would take), as tall as the others.
    loss = dash.plots["loss"].geometry()
    assert plot.geometry().left() == loss.left() and plot.geometry().top() > loss.bottom()
    assert abs(plot.height() - loss.height()) <= 2
    OUT.mkdir(parents=True, exist_ok=True)
    assert dash.grab().save(str(OUT / "dashboard-perceptual.png"), "PNG")
    dash.clear()
    assert not dash.plots["perceptual"].isVisible()
