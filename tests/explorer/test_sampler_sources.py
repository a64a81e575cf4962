"""The Sampler's sources come from core/latent/samplers.py's registry: the latent diffusion prior is one, fitted on a
worker (the grid marked out of date meanwhile), and the grid shows what that sampler draws for the seed. Driven
offscreen with the bundled digits VAE and the bundled digits."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from core.config import DataConfig
from core.data.datasets import load_dataset
from core.latent.encoding import decode_latents
from core.latent.samplers import SAMPLERS
from explorer.state import AppState

FIT_STEPS = 40          # a short fit: this checks the plumbing, not the prior's quality (bench/bench_priors.py)


@pytest.fixture(scope="module")
def loaded(bundled_vae):
    return bundled_vae, load_dataset(DataConfig(name="digits", image_size=bundled_vae.meta.image_size))


def test_the_source_box_lists_the_registry_then_the_region(qtbot, loaded):
    from explorer.panels.sampler import DIFFUSION_PRIOR, REGION, SamplerPanel

    state = AppState()
    state.vae, state.dataset = loaded
    panel = SamplerPanel(state)
    qtbot.addWidget(panel)
    listed = []
    for i in range(panel.source.count()):
        panel.source.setCurrentIndex(i)
        listed.append(panel.controls.source_name())
    assert not panel.source.model().item(REGION).isEnabled()     # until a selection is sent from the map
    assert listed[:-1] == list(SAMPLERS) and listed[-1] == "region"
    assert listed[DIFFUSION_PRIOR] == "diffusion-prior" and REGION == len(SAMPLERS)
    panel.shutdown()


def test_the_diffusion_prior_is_a_sampler_source(qtbot, loaded):
    from explorer.panels.sampler import DIFFUSION_PRIOR, SamplerPanel

    vae, dataset = loaded
    state = AppState()
    state.vae, state.dataset = vae, dataset
    panel = SamplerPanel(state)
    qtbot.addWidget(panel)
    panel.resize(1100, 600)
    panel.show()

    def settle(timeout=120_000):
        qtbot.waitUntil(lambda: not panel.is_sampling(), timeout=timeout)

    settle()
    prior = panel.images.copy()
    panel.columns.setValue(4)
    settle()
    assert not panel.fit_steps.isVisible()
    panel.fit_steps.setValue(FIT_STEPS)
    settle()
    panel.source.setCurrentIndex(DIFFUSION_PRIOR)                 # fitted on a worker; the grid marked meanwhile
    assert panel.fit_steps.isVisible() and panel.solver_steps.isVisible()
    assert "out of date: fitting the diffusion prior…" in panel.vae_title.text()
    assert panel.status.text() == "fitting the diffusion prior…" and panel.tasks.busy("diffusion-prior")
    settle()
    title = panel.vae_title.text()
    assert "z from the diffusion prior" in title and "out of date" not in title
    assert panel.status.text().endswith("z from the diffusion prior")
    fitted = panel.sources.fits["diffusion-prior"][1]
    assert fitted.prior.settings.train_steps == FIT_STEPS and fitted.prior.n_images == len(dataset.train)

    # the grid is what the sampler draws for this seed (as `sample --from diffusion-prior --seed 0`), not the prior
    rows = list(range(10))
    labels = np.repeat(rows, 4)
    z = fitted.sample(labels, torch.Generator().manual_seed(0), temperature=1.0).numpy()
    expected = decode_latents(vae.model, z, labels)
    np.testing.assert_allclose(panel._z, z, atol=1e-6)
    assert np.abs(panel.images.astype(int) - expected.astype(int)).max() <= 1
    assert panel.images.shape[0] == 40 and not np.array_equal(panel.images, prior[:40])
    noise = torch.randn(40, vae.model.latent_dim, generator=torch.Generator().manual_seed(0)).numpy()
    assert np.abs(panel._z - noise).mean() > 0.1

    # same noise across rows: each row drawn from a generator of the seed, so every row starts from the same noise
    panel.same_noise.setChecked(True)
    settle()
    row = fitted.sample(np.full(4, 3), torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(panel._z[12:16], row, atol=1e-5)

    # spread matching: the same fit, its draws scaled to the data's class spreads (no refit)
    panel.same_noise.setChecked(False)
    settle()
    assert panel.match_spread.isVisible() and not panel.match_spread.isChecked()
    panel.match_spread.setChecked(True)
    settle()
    matched = panel.sources.fits["diffusion-prior"][1]
    assert matched.prior.settings.match_spread and matched.prior.process is fitted.prior.process
    z_matched = matched.sample(labels, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_allclose(panel._z, z_matched, atol=1e-5)
    assert np.abs(z_matched - z).mean() > 1e-3                     # the map moved the draws
    panel.match_spread.setChecked(False)
    settle()
    np.testing.assert_allclose(panel._z, z, atol=1e-5)

    # another fit setting: the grid marked out of date while the prior is fitted again with it
    shown = panel.images.copy()
    panel.fit_steps.setValue(FIT_STEPS + 10)
    assert "out of date: fitting the diffusion prior…" in panel.vae_title.text()
    np.testing.assert_array_equal(panel.images, shown)            # the old grid stays until the new one is there
    settle()
    refit = panel.sources.fits["diffusion-prior"][1]
    assert refit is not fitted and refit.prior.settings.train_steps == FIT_STEPS + 10
    fitted = refit

    # a newer snapshot of the model: the grid is marked out of date while its own prior is fitted
    newer = copy.deepcopy(vae.model)
    with torch.no_grad():
        next(newer.parameters()).mul_(0.5)
    state.vae = dataclasses.replace(vae, model=newer)
    state.vaeChanged.emit()
    assert "out of date: fitting the diffusion prior…" in panel.vae_title.text()
    settle()
    assert panel.sources.fits["diffusion-prior"][1] is not fitted and "out of date" not in panel.vae_title.text()

    # without the training data there is nothing to fit: the grid says so
    state.dataset = None
    state.vae = vae
    state.vaeChanged.emit()
    settle()
    assert "needs the model's training data" in panel.vae_title.text()
    panel.shutdown()
