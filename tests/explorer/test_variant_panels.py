"""The panels with a hierarchical VAE-GAN trained for a few steps: the interpolation panel's layer picker moves one
layer's slice, and the dashboard draws the KL of each layer and the adversarial curves. Screenshots land in
$VAE_EXPLORER_TEST_SHOTS (look at them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.training.checkpoint import from_snapshot
from core.training.events import ModelSnapshot, StepMetrics
from core.training.trainer import Trainer
from explorer.state import AppState

OUT = Path(os.environ["VAE_EXPLORER_TEST_SHOTS"])  # under the session's test home (tests/conftest.py)
DATA = DataConfig("digits", image_size=16, per_class=20)
MODEL = VAEConfig(latent_dim=4, width=8, stochastic_layers=3, layer_channels=2, adversarial_weight=0.5,
                  adversarial_start=3)


@pytest.fixture(scope="module")
def trained():
    dataset = load_dataset(DATA)
    cfg = Config(DATA, MODEL, TrainConfig(epochs=2, batch_size=32, log_every=1, device="cpu", seed=1))
    events = list(Trainer(cfg, dataset=dataset).run())
    assert events[-1].status == "completed"
    snapshot = [ev for ev in events if isinstance(ev, ModelSnapshot)][-1]
    return from_snapshot(snapshot), dataset, events


def test_interpolation_picks_a_layer_and_moves_only_its_slice(qtbot, trained):
    from explorer.panels.interpolate import InterpolatePanel

    loaded, dataset, _ = trained
    state = AppState()
    state.vae, state.dataset = loaded, dataset
    panel = InterpolatePanel(state)
    qtbot.addWidget(panel)
    panel.resize(1100, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    qtbot.waitUntil(lambda: not panel.tasks.busy(), timeout=60000)
    assert panel.layer.isVisible()
    assert [panel.layer.itemText(i) for i in range(panel.layer.count())] == [
        "all layers", "z1 (4 dims)", "z2 (8 dims)", "z3 (32 dims)"]
    assert sorted(panel.slider_dims()) == list(range(44))          # all layers: every dimension has a slider
    panel.index[0].setValue(0)
    panel.index[1].setValue(7)
    panel.layer.setCurrentIndex(2)                                  # z2: dims 4..11
    assert panel.layer_slice() == slice(4, 12)
    assert sorted(panel.slider_dims()) == list(range(4, 12))
    z0, z1 = panel._path_ends()
    outside = np.r_[0:4, 12:44]
    assert np.array_equal(z0[outside], z1[outside]) and np.array_equal(z1[4:12], panel.z[1][4:12])
    panel.t_slider.setValue(500)
    panel._live.flush()
    assert panel.current is not None and panel.strip.shape[0] == panel.steps.value()
    OUT.mkdir(parents=True, exist_ok=True)
    qtbot.wait(50)     # the other layers' sliders are deleted by the event loop
    assert panel.grab().save(str(OUT / "interpolate-hvae-layer.png"), "PNG")
    # a traversal slider of that layer changes the picture
    before = panel.current.copy()
    panel.dim_slider(panel.slider_dims()[0]).setValue(300)
    panel._traverse.flush()
    panel._live.flush()
    assert not np.array_equal(before, panel.current)
    panel.shutdown()


def test_a_plain_vae_shows_no_layer_picker(qtbot, bundled_vae):
    from explorer.panels.interpolate import InterpolatePanel

    state = AppState()
    state.vae, state.dataset = bundled_vae, load_dataset(DataConfig("digits", image_size=bundled_vae.meta.image_size))
    panel = InterpolatePanel(state)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    assert not panel.layer.isVisible() and panel.layer_slice() is None
    panel.shutdown()


def test_dashboard_draws_the_kl_of_each_layer_and_the_adversarial_curves(qtbot, trained):
    from explorer.panels.dashboard import RunDashboard

    _, _, events = trained
    dash = RunDashboard()
    qtbot.addWidget(dash)
    dash.resize(1100, 750)
    dash.show()
    assert not dash.plots["adversarial"].isVisible()
    for ev in events:
        dash.show_event(ev)
    dash.finish()
    steps = [ev for ev in events if isinstance(ev, StepMetrics)]
    assert dash.plots["kl_layers"].isVisible()
    terms = dash.plots["kl_layers"].series
    for layer in ("kl_z1", "kl_z2", "kl_z3"):
        np.testing.assert_allclose(terms[layer].ys, [e.metrics[layer] for e in steps])
    assert dash.plots["adversarial"].isVisible() and dash.plots["adv_weight"].isVisible()
    for key, plot in (("d_loss", "adversarial"), ("g_adv", "adversarial"), ("adv_weight", "adv_weight")):
        np.testing.assert_allclose(dash.plots[plot].series[key].ys, [e.metrics[key] for e in steps])
    assert dash.plots["adv_weight"].series["adv_weight"].ys[-1] > 0      # on after adversarial_start
    OUT.mkdir(parents=True, exist_ok=True)
    assert dash.grab().save(str(OUT / "dashboard-hvae-gan.png"), "PNG")
    dash.clear()          # a new run: its own layers (or none), no adversarial row until it logs one
    assert not dash.plots["kl_layers"].series
    assert not dash.plots["adversarial"].isVisible() and not dash.plots["kl_layers"].isVisible()


@pytest.mark.parametrize("name", ["digits-hvae", "digits-vaegan"])
def test_the_train_form_holds_the_variant_presets(qtbot, name):
    from core.config import PRESETS
    from explorer.panels.train import TrainPanel

    panel = TrainPanel(AppState())
    qtbot.addWidget(panel)
    panel.apply_preset(name)
    assert panel.validate() == "" and panel.config() == PRESETS[name]
    # a hierarchy deeper than the decoder has stages is refused in the form, with the reason
    panel.vae_form.set_field("stochastic_layers", 5)
    assert "stochastic_layers" in panel.validate()
