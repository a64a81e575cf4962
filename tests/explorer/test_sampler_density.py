"""The Sampler's source switch: z from the prior or from the per-class GMM fitted to the encoded training set (on a
worker), with the grid marked out of date while the density of a new model is fitted. Driven offscreen with the
bundled digits VAE; the screenshot lands in $VAE_EXPLORER_TEST_SHOTS (look at it)."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import DataConfig
from core.data.datasets import load_dataset
from core.latent.encoding import decode_latents
from explorer.state import AppState

OUT = Path(os.environ["VAE_EXPLORER_TEST_SHOTS"])  # under the session's test home (tests/conftest.py)


@pytest.fixture(scope="module")
def loaded(bundled_vae):
    return bundled_vae, load_dataset(DataConfig(name="digits", image_size=bundled_vae.meta.image_size))


def test_switching_the_source_changes_the_grid_and_its_title(qtbot, loaded):
    from explorer.panels.sampler import SamplerPanel

    vae, dataset = loaded
    state = AppState()
    state.vae, state.dataset = vae, dataset
    panel = SamplerPanel(state)
    qtbot.addWidget(panel)
    panel.resize(1100, 600)
    panel.show()

    def settle():
        qtbot.waitUntil(lambda: not panel.is_sampling(), timeout=30_000)

    settle()
    prior = panel.images.copy()
    assert "z from the prior" in panel.vae_title.text()

    panel.source.setCurrentIndex(1)              # fitted density: fitted on the worker, the prior grid marked
    assert "out of date: fitting the density" in panel.vae_title.text()
    assert panel.tasks.busy("density")
    settle()
    title = panel.vae_title.text()
    assert "fitted density" in title and "out of date" not in title and "4 full-covariance components" in title
    assert panel.density is not None and panel.density.n_images == len(dataset.train)
    assert panel.images.shape == prior.shape and not np.array_equal(panel.images, prior)
    assert panel.status.text().endswith("z from the fitted density")
    fitted = panel.density
    # "send to interpolation" hands over the density's z of the clicked cell
    panel.select(23)
    with qtbot.waitSignal(panel.state.interpolationRequested, timeout=1000):
        panel.send_btn.click()
    (sent,) = panel.state.interpolation_request.endpoints
    z, label = sent.z, sent.label
    assert label == 2 and np.array_equal(decode_latents(vae.model, z[None], label)[0], panel.images[23])
    OUT.mkdir(parents=True, exist_ok=True)
    assert panel.grab().save(str(OUT / "sampler-density.png"), "PNG")

    panel.source.setCurrentIndex(0)              # back to the prior: the same grid as before, no refit later
    settle()
    np.testing.assert_array_equal(panel.images, prior)
    panel.source.setCurrentIndex(1)
    assert not panel.tasks.busy("density")       # this model's density is kept
    settle()
    assert panel.density is fitted
    assert panel.components.isVisible() and panel.covariance.isVisible()

    # the density's settings: another fit, its grid titled with them
    panel.components.setValue(2)
    panel.covariance.setCurrentText("diagonal covariance")
    assert "out of date: fitting the density" in panel.vae_title.text()
    settle()
    assert "2 diagonal-covariance components" in panel.vae_title.text()
    assert panel.density.components == 2 and panel.density.covariance == "diag"
    panel.components.setValue(4)
    panel.covariance.setCurrentText("full covariance")
    settle()
    assert "4 full-covariance components" in panel.vae_title.text()
    fitted = panel.density

    # a newer snapshot of the model: its own density, the old grid marked out of date meanwhile
    newer = copy.deepcopy(vae.model)
    with torch.no_grad():
        next(newer.parameters()).mul_(0.5)
    state.vae = dataclasses.replace(vae, model=newer)
    state.vaeChanged.emit()
    qtbot.waitUntil(lambda: "out of date" in panel.vae_title.text() or panel.density is not fitted, timeout=10_000)
    settle()
    assert panel.density is not fitted and "out of date" not in panel.vae_title.text()

    # without the training data there is nothing to fit: the grid says so
    state.dataset = None
    state.vae = vae
    state.vaeChanged.emit()
    settle()
    assert "needs the model's training data" in panel.vae_title.text()
    panel.shutdown()
