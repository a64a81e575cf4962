"""The prior's holes on the latent map (issue 24), driven offscreen with the bundled digits VAE: where N(0, I), the
class mixture and the diffusion prior put their z, drawn through the map's own projection, and the hole score per
class beside it."""

from __future__ import annotations

import numpy as np
import pytest

from core.config import DataConfig
from core.data.datasets import load_dataset
from core.evaluation.holes import hole_score
from explorer.state import AppState


@pytest.fixture(scope="module")
def loaded(bundled_vae):
    return bundled_vae, load_dataset(DataConfig(name="digits", image_size=bundled_vae.meta.image_size))


def open_map(qtbot, vae, dataset, *, split="all"):
    from explorer.panels.latent_map import LatentMapPanel

    state = AppState()
    panel = LatentMapPanel(state)
    qtbot.addWidget(panel)
    panel.method_box.setCurrentText("PCA")
    panel.split_box.setCurrentText(split)
    panel.resize(1200, 700)
    panel.show()
    state.set_vae(vae)
    state.set_dataset(dataset)
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy(), timeout=60_000)
    return state, panel


def show_source(qtbot, panel, text: str, timeout: int = 120_000):
    overlay = panel.prior_overlay
    overlay.source_box.setCurrentText(text)
    qtbot.waitUntil(lambda: not panel.tasks.busy() and overlay.score is not None
                    and overlay._z_source == overlay.source(), timeout=timeout)
    return overlay


def test_prior_samples_land_through_the_maps_projection_and_the_prior_has_more_holes_than_the_mixture(qtbot, loaded):
    state, panel = open_map(qtbot, *loaded)
    overlay, model = panel.prior_overlay, panel.model
    assert overlay.source() is None and panel.scatter._overlay.xy is None      # off until chosen

    prior = show_source(qtbot, panel, "N(0, I)")
    z = prior.z
    assert z.shape == (len(panel.xy), model.latents.mu.shape[1])
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05   # really N(0, I)
    # the map's transform is the projection the data went through: it puts the data latents where they are shown ...
    np.testing.assert_allclose(model.transform.to_map(model.latents.mu), panel.xy, atol=1e-4)
    # ... and the overlay is the sampler's z through it, given to the scatter as its second density layer
    np.testing.assert_allclose(overlay.xy, model.transform.to_map(z), atol=1e-6)
    np.testing.assert_array_equal(panel.scatter._overlay.xy, overlay.xy)
    image = panel.scatter._overlay.image
    assert image is not None and (image[..., 3] > 0).sum() > 100
    assert tuple(image[image[..., 3] > 0][0, :3]) == (0xE6, 0x00, 0x7E)        # in its own colour
    # the score beside the map: all classes, then one row per class, as core computes it for these z
    expected = hole_score(model.latents.mu, model.latents.labels, z, overlay.z_labels)
    assert prior.score == expected and prior.score.score > 0.8
    assert overlay.table.rowCount() == 11 and overlay.table.item(0, 0).text() == "all classes"
    assert [overlay.table.item(r + 1, 1).text() for r in range(10)] == [f"{v:.2f}" for v in expected.per_class]
    assert overlay.table.isEnabled() and f"holes {expected.score:.2f}" == overlay.summary.text()
    assert panel.side_tabs.currentWidget() is overlay.widget
    prior_score = prior.score.score

    mixture = show_source(qtbot, panel, "mixture")
    assert mixture.score.score < 0.5 < prior_score      # the mixture stays on the data: its holes close
    np.testing.assert_allclose(mixture.xy, model.transform.to_map(mixture.z), atol=1e-6)
    per_class = np.array(mixture.score.per_class)
    assert (per_class < np.array(expected.per_class)).all()

    # back to N(0, I): fitted already, so no "fitting…"; the same seed draws the same z
    overlay.source_box.setCurrentText("N(0, I)")
    assert "fitting" not in overlay.summary.text()
    qtbot.waitUntil(lambda: not panel.tasks.busy() and overlay._z_source == "prior", timeout=20_000)
    np.testing.assert_array_equal(overlay.z, z)

    overlay.source_box.setCurrentText("off")
    assert panel.scatter._overlay.xy is None and overlay.table.rowCount() == 0
    panel.shutdown()


def test_the_diffusion_prior_closes_the_holes_and_a_new_model_marks_the_score_out_of_date(qtbot, loaded):
    from core.latent.diffusion_prior import DiffusionPriorSettings
    from core.training.checkpoint import load_model

    vae, dataset = loaded
    state, panel = open_map(qtbot, vae, dataset, split="test")
    overlay = panel.prior_overlay
    overlay.diffusion_settings = DiffusionPriorSettings(width=64, blocks=2, train_steps=300, batch_size=128, lr=3e-3)
    overlay.source_box.setCurrentText("diffusion prior")
    assert overlay.summary.text().startswith("fitting diffusion prior") or panel.tasks.running("prior")
    qtbot.waitUntil(lambda: not panel.tasks.busy() and overlay.score is not None, timeout=180_000)
    diffusion = overlay.score.score
    assert diffusion < 0.5
    np.testing.assert_allclose(overlay.xy, panel.model.transform.to_map(overlay.z), atol=1e-6)

    # another model: the score is marked out of date (the table greyed) and the old z leave the map until refitted.
    # What the mark showed is recorded when it is made: a refit read from the cache can replace it within one pass of
    # the event loop, before a poll of the title would see it.
    marks: list[tuple[str, bool, bool]] = []
    mark = overlay._mark_out_of_date

    def recorded(doing: str) -> None:
        mark(doing)
        marks.append((overlay.title.text(), overlay.table.isEnabled(), panel.scatter._overlay.xy is None))

    overlay._mark_out_of_date = recorded
    state.set_vae(load_model(vae.path))
    qtbot.waitUntil(lambda: bool(marks), timeout=60_000)
    title, table_enabled, overlay_gone = marks[0]
    assert "out of date" in title and not table_enabled and overlay_gone, marks[0]
    qtbot.waitUntil(lambda: not panel.tasks.busy() and overlay._z_for is state.vae.model, timeout=180_000)
    assert overlay.table.isEnabled() and "out of date" not in overlay.title.text()
    assert overlay.score.score < 0.5 and panel.scatter._overlay.xy is not None
    panel.shutdown()


def test_a_umap_map_places_a_latent_by_its_nearest_data_latents_and_says_so(qtbot, loaded):
    from explorer.panels.latent_map_model import MapTransform

    rng = np.random.default_rng(0)
    mu = rng.standard_normal((200, 6)).astype(np.float32)
    xy = rng.standard_normal((200, 2)).astype(np.float32)          # a map with no linear relation to mu
    umap = MapTransform(mu, xy, "umap")
    assert not umap.linear
    np.testing.assert_allclose(umap.to_map(mu[:20]), xy[:20], atol=1e-5)   # a data latent lands on its own point
    between = umap.to_map(mu[:1] * 0.5 + mu[1:2] * 0.5)[0]
    assert xy.min(0)[0] <= between[0] <= xy.max(0)[0]                      # inside the data's hull, never beyond
    pca = MapTransform(mu, mu[:, :2] * 3 + 1, "pca")
    np.testing.assert_allclose(pca.to_map(mu + 10)[:, :2], (mu[:, :2] + 10) * 3 + 1, rtol=1e-4)   # linear: it extends

    state, panel = open_map(qtbot, *loaded, split="test")
    import explorer.panels.latent_map as lm

    lm_job = lm._project_job
    try:
        lm._project_job = lambda *a, settings=None, progress=None, should_stop=None: np.asarray(a[1][:, :2] * 2,
                                                                                                np.float32)
        panel.method_box.setCurrentText("UMAP")
        qtbot.waitUntil(lambda: panel.projection_shown == "umap" and not panel.tasks.busy(), timeout=20_000)
    finally:
        lm._project_job = lm_job
    overlay = show_source(qtbot, panel, "N(0, I)")
    assert "PCA shows how far off the data" in overlay.note.text()
    np.testing.assert_allclose(overlay.xy, panel.model.transform.to_map(overlay.z), atol=1e-6)
    panel.shutdown()
