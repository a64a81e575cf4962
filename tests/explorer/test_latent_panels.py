"""The latent map, sampler and interpolation panels, driven offscreen with a real (bundled or briefly trained) VAE.

Screenshots land in $VAE_EXPLORER_TEST_SHOTS (look at them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from core.config import Config, DataConfig
from core.data.datasets import load_dataset
from core.latent.encoding import decode_latents
from core.models import build_model
from core.training.checkpoint import LoadedModel
from explorer.state import AppState

OUT = Path(os.environ["VAE_EXPLORER_TEST_SHOTS"])  # under the session's test home (tests/conftest.py)


def check_classes(panel, classes: list[int]) -> None:
    """Tick exactly these classes in the sampler's class list, as a user would (one grid for the whole change)."""
    from PySide6.QtCore import Qt

    panel.class_list.blockSignals(True)
    for i in range(panel.class_list.count()):
        panel.class_list.item(i).setCheckState(Qt.CheckState.Checked if i in classes else Qt.CheckState.Unchecked)
    panel.class_list.blockSignals(False)
    panel.regenerate(new_seed=False)


@pytest.fixture(scope="module")
def loaded(bundled_vae):
    vae = bundled_vae
    ds = load_dataset(DataConfig(name="digits", image_size=vae.meta.image_size))
    return vae, ds


def make_state(loaded) -> AppState:
    state = AppState()
    state.vae, state.dataset = loaded
    return state


def viewport_pos(panel, x: float, y: float):
    return panel.scatter.mapFromScene(panel.scatter.view.mapViewToScene(QPointF(x, y)))


def wait_idle(qtbot, panel, timeout=60000):
    qtbot.waitUntil(lambda: not panel.tasks.busy(), timeout=timeout)


def screenshot(widget, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    assert widget.grab().save(str(path), "PNG")
    return path


# ---- latent map ------------------------------------------------------------------------------------------------------

def open_map(qtbot, loaded):
    from explorer.panels.latent_map import LatentMapPanel

    state = AppState()
    panel = LatentMapPanel(state)
    qtbot.addWidget(panel)
    panel.method_box.setCurrentText("PCA")     # UMAP has its own test in tests/core (slow cold numba import)
    panel.resize(1100, 650)
    panel.show()
    state.set_vae(loaded[0])
    state.set_dataset(loaded[1])
    qtbot.waitUntil(lambda: panel.xy is not None, timeout=60000)
    wait_idle(qtbot, panel)
    qtbot.wait(50)
    return state, panel


def test_map_click_point_and_empty_space(qtbot, loaded, tmp_path):
    state, panel = open_map(qtbot, loaded)
    n = len(loaded[1].test)
    assert panel.xy.shape == (n, 2) and panel.projection_shown == "pca"
    assert len(panel.scatter.items) == 10 and sum(len(i) for i in panel.scatter.class_index) == n

    # click on a data point (the real mouse path through pyqtgraph's scene)
    i = int(np.argmin(np.linalg.norm(panel.xy - np.median(panel.xy, 0), axis=1)))
    with qtbot.waitSignal(state.imageSelected, timeout=2000) as sig:
        qtbot.mouseClick(panel.scatter.viewport(), Qt.MouseButton.LeftButton, pos=viewport_pos(panel, *panel.xy[i]))
    assert sig.args[0] == "test"
    hit = sig.args[1]
    assert np.linalg.norm(panel.xy[hit] - panel.xy[i]) < 1e-3 * np.ptp(panel.xy) + 1e-6 or hit == i
    assert panel.selected == hit
    assert np.array_equal(panel.image_view.image(), panel._images[hit])
    lat = panel.latents
    assert np.array_equal(panel.recon_view.image(), decode_latents(loaded[0].model, lat.mu[hit:hit + 1],
                                                                   int(lat.labels[hit]))[0])
    assert panel.neighbours.count() == 8
    assert len(panel._bar_item.opts["height"]) == lat.mu.shape[1]

    # click empty space: the decode under the cursor, flagged far from data
    lo, hi = panel.scatter.view.viewRange()
    corner = (lo[1] - 0.03 * (lo[1] - lo[0]), hi[0] + 0.03 * (hi[1] - hi[0]))   # bottom right (legend: top left)
    d = panel.mapper.distance_to_data(np.array([corner]))[0]
    qtbot.mouseClick(panel.scatter.viewport(), Qt.MouseButton.LeftButton, pos=viewport_pos(panel, *corner))
    assert panel.selected is None and panel.query is not None
    np.testing.assert_allclose(panel.query, corner, rtol=0.05, atol=0.05 * np.ptp(panel.xy))
    z = panel.mapper.latent_at(panel.query[None])
    label = int(panel.mapper.label_at(panel.query[None])[0])
    assert np.array_equal(panel.recon_view.image(), decode_latents(loaded[0].model, z, label)[0])
    assert "distance to data" in panel.info.text()
    assert ("FAR FROM DATA" in panel.info.text()) == (d > 3.0)

    # decode as a chosen class
    panel.decode_as.setCurrentIndex(1 + 7)
    assert np.array_equal(panel.recon_view.image(), decode_latents(loaded[0].model, z, 7)[0])

    # send the current latent to interpolation
    with qtbot.waitSignal(panel.state.interpolationRequested, timeout=1000):
        panel.send_btn.click()
    (sent,) = panel.state.interpolation_request.endpoints
    assert sent.z.shape == (lat.mu.shape[1],) and sent.label == 7 and sent.model is loaded[0].model
    assert not sent.is_image                    # a decoded position, not a dataset image

    # hover a point: thumbnail of image + reconstruction
    panel.scatter._on_move(panel.scatter.view.mapViewToScene(QPointF(*panel.xy[i])))
    assert panel.scatter.hover_label.isVisible() and panel.hover_index is not None
    panel.scatter._on_move(panel.scatter.view.mapViewToScene(QPointF(*corner)))
    assert not panel.scatter.hover_label.isVisible()

    # a hidden class (legend toggle) is not clickable any more
    cls = int(lat.labels[hit])
    panel.scatter.items[cls].setVisible(False)
    panel.click_view(QPointF(*panel.xy[hit]))
    assert panel.selected != hit

    # colour by KL / by a latent dimension
    panel.colour_box.setCurrentText("KL")
    assert panel.colour_values() is lat.kl
    panel.colour_box.setCurrentText("latent dimension")
    panel.dim_box.setValue(1)
    np.testing.assert_array_equal(panel.colour_values(), lat.mu[:, 1])
    panel.colour_box.setCurrentText("class")

    panel.scatter.items[cls].setVisible(True)
    panel.select_point(i)
    screenshot(panel, "latent_map.png")
    out = tmp_path / "map.png"
    panel.export_png(str(out))
    assert Image.open(out).size[0] > 100
    panel.shutdown()


def test_map_sweep_is_rate_limited_and_ends_on_the_last_position(qtbot, loaded):
    _, panel = open_map(qtbot, loaded)
    lo, hi = panel.xy.min(0), panel.xy.max(0)
    path = np.linspace(lo, hi, 60)
    decodes = []
    panel._sweep.triggered.connect(lambda: decodes.append(1))
    for p in path[:-1]:
        panel._on_sweep(QPointF(*p), False)
    panel._on_sweep(QPointF(*path[-1]), True)
    assert 1 <= len(decodes) < 60            # drag events arrive faster than decodes are made
    np.testing.assert_allclose(panel.query, path[-1], rtol=1e-6)
    panel.shutdown()


def test_map_projection_worker_cancel_keeps_pca(qtbot, loaded, monkeypatch):
    import explorer.panels.latent_map as lm

    def slow_job(loaded_model, mu, method, split, seed, settings=None, progress=None, should_stop=None):
        for k in range(2000):
            if should_stop():
                return None
            progress(k, 2000)
            time.sleep(0.005)
        return np.zeros((len(mu), 2), np.float32)

    _, panel = open_map(qtbot, loaded)
    monkeypatch.setattr(lm, "_project_job", slow_job)
    panel.method_box.setCurrentText("UMAP")
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=10000)
    assert panel.cancel_btn.isEnabled()
    panel.cancel_btn.click()
    wait_idle(qtbot, panel)
    assert panel.projection_shown == "pca" and panel.xy is not None and "cancelled" in panel.status.text()

    # and a projection that completes replaces PCA
    monkeypatch.setattr(lm, "_project_job", lambda *a, settings=None, progress=None, should_stop=None:
                        np.asarray(a[1][:, :2], np.float32) * 2)
    panel.method_box.setCurrentText("t-SNE")
    qtbot.waitUntil(lambda: panel.projection_shown == "tsne", timeout=10000)
    np.testing.assert_allclose(panel.xy, panel.latents.mu[:, :2] * 2)
    panel.shutdown()


# ---- sampler ---------------------------------------------------------------------------------------------------------

def test_sampler_grid_select_send_and_export(qtbot, loaded, tmp_path):
    from explorer.panels.sampler import SamplerPanel

    state = make_state(loaded)
    panel = SamplerPanel(state)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    def settle():   # grids are sampled on a worker: wait for the one of the newest settings
        qtbot.waitUntil(lambda: not panel.is_sampling(), timeout=20_000)

    settle()
    size, ch = loaded[0].meta.image_size, loaded[0].meta.channels
    assert panel.images.shape == (100, size, size, ch)
    first = panel.images.copy()
    panel.temperature.setValue(0.5)
    settle()
    assert not np.array_equal(first, panel.images)
    panel.temperature.setValue(1.0)
    settle()
    np.testing.assert_array_equal(first, panel.images)          # same seed and temperature: same grid
    panel.regen_btn.click()
    settle()
    assert panel.seed.value() == 1 and not np.array_equal(first, panel.images)

    # a burst of slider moves while a grid is being sampled ends with the grid of the newest value
    for value in (0.2, 0.4, 0.6, 0.8, 1.0):
        panel.temperature.setValue(value)
    settle()
    assert panel.status.text().startswith("seed 1, temperature 1.00")
    panel.seed.setValue(0)
    settle()
    np.testing.assert_array_equal(first, panel.images)

    check_classes(panel, [2, 5])
    settle()
    assert panel.images.shape[0] == 20 and panel.grid.rows == 2
    panel.same_noise.setChecked(True)
    check_classes(panel, [4])
    settle()
    assert panel.images.shape[0] == 10

    check_classes(panel, list(range(10)))
    panel.same_noise.setChecked(True)
    settle()
    # clicking a cell (real mouse) shows it large and enables "send to interpolation"
    rect = panel.grid._cell_rect(13)
    qtbot.mouseClick(panel.grid, Qt.MouseButton.LeftButton, pos=rect.center())
    assert panel.selected == 13
    assert np.array_equal(panel.large.image(), panel.images[13])
    with qtbot.waitSignal(panel.state.interpolationRequested, timeout=1000):
        panel.send_btn.click()
    (sent,) = panel.state.interpolation_request.endpoints
    z, label = sent.z, sent.label
    assert label == 1 and z.shape == (loaded[0].model.latent_dim,) and sent.model is loaded[0].model
    assert np.array_equal(decode_latents(loaded[0].model, z[None], label)[0], panel.images[13])

    screenshot(panel, "sampler.png")
    out = tmp_path / "grid.png"
    panel.export_png(str(out))
    im = Image.open(out)
    im.load()
    assert im.format == "PNG" and im.size[0] > 50
    panel.shutdown()


# ---- interpolation ---------------------------------------------------------------------------------------------------

def open_interp(qtbot, loaded):
    from explorer.panels.interpolate import InterpolatePanel

    state = make_state(loaded)
    panel = InterpolatePanel(state)
    qtbot.addWidget(panel)
    panel.resize(1100, 600)
    panel.show()
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    wait_idle(qtbot, panel)
    return state, panel


def test_interpolation_slider_traversal_and_exports(qtbot, loaded, tmp_path):
    state, panel = open_interp(qtbot, loaded)
    model, lat = loaded[0].model, panel.latents
    panel.index[0].setValue(3)
    panel.index[1].setValue(40)
    panel._live.flush()
    start = panel.current.copy()
    assert np.array_equal(start, decode_latents(model, lat.mu[3:4], int(lat.labels[3]))[0])
    panel.t_slider.setValue(1000)
    panel._live.flush()
    assert np.abs(panel.current.astype(int) - decode_latents(model, lat.mu[40:41], int(lat.labels[40]))[0]).max() <= 1
    assert panel.strip.shape[0] == 10 and panel.strip_grid.count() == 10

    # slider drag: decodes are rate-limited and the last value wins
    decodes = []
    panel._live.triggered.connect(lambda: decodes.append(1))
    for v in range(0, 1001, 10):
        panel.t_slider.setValue(v)
    panel.t_slider.setValue(500)
    qtbot.wait(60)
    assert 1 <= len(decodes) < 100
    assert panel.t_label.text() == "t = 0.50"

    # traversal sliders: ordered by KL, moving one changes the live image
    dims = panel.slider_dims()
    kl = lat.kl_per_dim
    assert sorted(dims) == list(range(len(kl))) and np.all(np.diff(kl[dims]) <= 0)
    mid = panel.current.copy()
    panel.dim_slider(dims[0]).setValue(300)
    panel._live.flush()
    assert panel.offsets[dims[0]] == pytest.approx(3.0)
    assert not np.array_equal(mid, panel.current)
    panel.reset_offsets()
    assert not panel.offsets.any()

    # exports
    png, gif = tmp_path / "strip.png", tmp_path / "walk.gif"
    panel.export_strip_png(str(png))
    panel.export_gif(str(gif), frames=6)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] == 10 * im.size[1]
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 10

    # class morph at the same z
    panel.mode.setCurrentIndex(1)
    panel.cls[0].setCurrentIndex(0)
    panel.cls[1].setCurrentIndex(6)
    panel.t_slider.setValue(1000)
    panel._live.flush()
    assert np.abs(panel.current.astype(int) - decode_latents(model, panel.z[0][None], 6)[0]).max() <= 1
    screenshot(panel, "interpolate.png")
    panel.shutdown()


def test_interpolation_endpoints_from_other_panels(qtbot, loaded):
    state, panel = open_interp(qtbot, loaded)
    lat = panel.latents
    state.imageSelected.emit("test", 11)
    state.imageSelected.emit("test", 22)
    assert (panel.index[0].value(), panel.index[1].value()) == (11, 22)
    np.testing.assert_array_equal(panel.z[1], lat.mu[22])
    z = np.full(lat.mu.shape[1], 0.5, np.float32)
    panel.receive_latent(z, 4)
    np.testing.assert_array_equal(panel.z[0], z)
    assert panel.y[0] == 4 and panel.cls[0].currentIndex() == 4
    panel.t_slider.setValue(0)
    panel._live.flush()
    assert np.array_equal(panel.current, decode_latents(loaded[0].model, z[None], 4)[0])
    panel.shutdown()


def test_sampler_compare_with_diffusion(qtbot, loaded):
    """The side-by-side diffusion grid (a tiny untrained model: this checks the plumbing, worker and timing)."""
    from core.config import DiffusionConfig
    from explorer.panels.sampler import SamplerPanel

    vae, ds = loaded
    cfg = DiffusionConfig(base_channels=8, levels=1, timesteps=10, sample_steps=2, sampler="ddim")
    torch.manual_seed(0)
    diff = LoadedModel(model=build_model(cfg, ds.meta).eval(), config=Config(model=cfg), meta=ds.meta, path=None,
                       step=0, epoch=0)
    state = make_state(loaded)
    panel = SamplerPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    assert not panel.compare.isEnabled()
    state.set_diffusion(diff)
    assert panel.compare.isEnabled()
    panel.columns.setValue(3)
    check_classes(panel, [1, 4])
    panel.compare.setChecked(True)
    qtbot.waitUntil(lambda: "samples in" in panel.diff_title.text(), timeout=120000)
    qtbot.waitUntil(lambda: not panel.is_sampling(), timeout=60000)
    assert "VAE:" in panel.diff_title.text()
    assert panel.diff_grid.count() == 6 and panel.diff_grid.rows == 2
    # The VAE grids that arrived while it sampled (columns, classes) did not restart it: same settings, one run.
    assert panel.diffusion_runs == 1
    first = panel.diff_grid.images.copy()
    # Temperature changes the VAE grid only; the diffusion grid stays as it is.
    vae_grid = panel.grid.images.copy()
    panel.temperature.setValue(0.5)
    qtbot.waitUntil(lambda: not panel.is_sampling() and not np.array_equal(panel.grid.images, vae_grid),
                    timeout=60000)
    assert panel.diffusion_runs == 1 and "samples in" in panel.diff_title.text()
    # A new seed gives new diffusion samples.
    panel.seed.setValue(panel.seed.value() + 1)
    qtbot.waitUntil(lambda: panel.diffusion_runs == 2 and "samples in" in panel.diff_title.text(), timeout=120000)
    assert not np.array_equal(panel.diff_grid.images, first)
    panel.compare.setChecked(False)
    assert not panel.diff_box.isVisible()
    panel.shutdown()


def test_hidden_map_does_no_work_until_shown(qtbot, loaded):
    from explorer.panels.latent_map import LatentMapPanel

    state = make_state(loaded)
    panel = LatentMapPanel(state)
    qtbot.addWidget(panel)
    panel.method_box.setCurrentText("PCA")
    state.vaeChanged.emit()
    assert not panel.tasks.busy() and panel.latents is None      # a hidden tab encodes nothing (and starts no UMAP)
    panel.show()
    qtbot.waitUntil(lambda: panel.xy is not None, timeout=60000)
    wait_idle(qtbot, panel)
    assert panel.projection_shown == "pca" and panel.progress.format() == "PCA shown"
    panel.shutdown()


def test_main_window_shows_the_panel_a_latent_is_handed_to(qtbot, monkeypatch):
    """A hand-off through the state: the interpolation panel takes it (no panel calls another), the window only
    switches to that panel."""
    from explorer.handoffs import Endpoint, InterpolationEndpoints
    from explorer.main_window import MainWindow
    from explorer.panels import interpolate as interpolate_module
    from explorer.state import AppState

    received = []
    monkeypatch.setattr(interpolate_module.InterpolatePanel, "_take_endpoints",
                        lambda self: received.append(self.state.interpolation_request))
    window = MainWindow(AppState(), defer_panels=False)
    qtbot.addWidget(window)     # closed (panels shut down) and deleted after the test
    request = InterpolationEndpoints((Endpoint(np.zeros(4, np.float32), 3, None),), "a test latent")
    window.state.hand_off(request)
    assert received == [request]
    assert window.tabs.currentWidget() is window.panels["interpolate"]


# ---- nothing stale: labels name what is shown; every view of a setting follows it ----------------------------------

def test_map_labels_name_the_projection_shown(qtbot, loaded, monkeypatch):
    import explorer.panels.latent_map as lm

    release = []

    def gated_job(loaded_model, mu, method, split, seed, settings=None, progress=None, should_stop=None):
        while not release and not should_stop():     # a "UMAP" that finishes when the test says so
            time.sleep(0.005)
        return None if should_stop() else np.asarray(mu[:, :2], np.float32) * 3

    _, panel = open_map(qtbot, loaded)
    monkeypatch.setattr(lm, "_project_job", gated_job)
    n = len(panel.xy)
    panel.method_box.setCurrentText("UMAP")
    # PCA stays on screen while UMAP computes, and everything says so
    assert panel.projection_shown == "pca" and panel.scatter.title_text == f"PCA of {n} test latents"
    assert panel.status.text() == "PCA shown; computing UMAP in the background…"
    release.append(1)
    qtbot.waitUntil(lambda: panel.projection_shown == "umap", timeout=10000)
    wait_idle(qtbot, panel)
    assert panel.scatter.title_text.startswith("UMAP of") and panel.status.text().startswith("UMAP map of")
    assert panel.progress.format() == "UMAP shown"

    panel.method_box.setCurrentText("PCA")       # PCA is shown at once: no label may still say UMAP
    assert panel.projection_shown == "pca"
    for text in (panel.scatter.title_text, panel.status.text(), panel.progress.format()):
        assert "PCA" in text and "UMAP" not in text, text

    release.clear()
    panel.method_box.setCurrentText("t-SNE")     # while t-SNE computes, the map shown (PCA) is named as such
    assert panel.status.text() == "PCA shown; computing t-SNE in the background…"
    assert "PCA" in panel.scatter.title_text
    panel.cancel()
    wait_idle(qtbot, panel)
    assert panel.status.text() == "cancelled; showing PCA" and panel.progress.format() == "PCA shown"
    panel.shutdown()


def test_map_empty_click_shows_the_decoded_points_own_neighbours(qtbot, loaded):
    _, panel = open_map(qtbot, loaded)
    lat = panel.latents
    i = int(np.argmin(np.linalg.norm(panel.xy - np.median(panel.xy, 0), axis=1)))
    panel.select_point(i)
    old = panel._neighbour_ids.copy()
    assert len(old) == 8 and f"#{i}" in panel.neighbours_title.text()

    lo, hi = panel.scatter.view.viewRange()
    corner = (lo[1] - 0.03 * (lo[1] - lo[0]), hi[0] + 0.03 * (hi[1] - hi[0]))
    panel.click_view(QPointF(*corner))
    assert panel.selected is None and panel.query is not None
    z = panel.mapper.latent_at(panel.query[None])[0]
    expected = np.argsort(np.linalg.norm(lat.mu - z, axis=1), kind="stable")[:8]
    np.testing.assert_array_equal(panel._neighbour_ids, expected)
    assert not np.array_equal(panel._neighbour_ids, old)
    assert "decoded position" in panel.neighbours_title.text() and panel.neighbours.count() == 8
    np.testing.assert_array_equal(panel.neighbours.images, panel._images[expected])

    # a new layout: the decoded position belonged to the old coordinates, so the side view is cleared
    panel.method_box.setCurrentText("PCA")
    panel._start_projection()
    assert panel.query is None and panel.neighbours.count() == 0 and not panel.send_btn.isEnabled()
    panel.shutdown()


def test_interpolation_strip_follows_the_traversal_sliders(qtbot, loaded, tmp_path):
    _, panel = open_interp(qtbot, loaded)
    panel.index[0].setValue(3)
    panel.index[1].setValue(40)
    panel._traverse.flush()
    before = panel.strip.copy()
    thumb = panel.thumbs[0].image().copy()
    dims = panel.slider_dims()
    for v in range(0, 301, 5):                  # a drag: redraws are rate-limited, the last value wins
        panel.dim_slider(dims[0]).setValue(v)
    panel.dim_slider(dims[1]).setValue(-150)
    qtbot.wait(80)
    n = panel.steps.value()
    expected = panel.path_images(np.linspace(0.0, 1.0, n))
    assert not np.array_equal(panel.strip, before) and not np.array_equal(panel.thumbs[0].image(), thumb)
    np.testing.assert_array_equal(panel.strip, expected)
    np.testing.assert_array_equal(panel.strip_grid.images, expected)

    # the exports agree: the strip PNG's cell k is the GIF's frame at the same t (export right after a slider
    # change: the pending redraw is applied first)
    panel.dim_slider(dims[0]).setValue(-200)
    png, gif = tmp_path / "strip.png", tmp_path / "walk.gif"
    panel.export_strip_png(str(png))
    panel.export_gif(str(gif), frames=n, scale=4)
    strip = np.asarray(Image.open(png).convert("L"))
    w = strip.shape[1] // n
    with Image.open(gif) as im:
        for k in range(n):
            im.seek(k)
            np.testing.assert_array_equal(np.asarray(im.convert("L")), strip[:, k * w:(k + 1) * w], err_msg=str(k))
    np.testing.assert_array_equal(panel.strip, panel.path_images(np.linspace(0.0, 1.0, n)))
    panel.shutdown()


def test_interpolation_keeps_a_sent_latent_through_the_model_change_reload(qtbot, loaded):
    state, panel = open_interp(qtbot, loaded)
    vae, _ds = loaded
    dim = panel.latents.mu.shape[1]

    def new_model() -> LoadedModel:      # a different model of the same shape (another "snapshot")
        torch.manual_seed(1)
        return LoadedModel(build_model(vae.config.model, vae.meta).eval(), vae.config, vae.meta, None, 0, 0, {})

    # visible panel: the model changes, a latent arrives while the new model encodes
    state.set_vae(new_model())
    assert panel.latents is None
    z = np.full(dim, 0.25, np.float32)
    panel.receive_latent(z, 6)
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    np.testing.assert_array_equal(panel.z[0], z)
    assert panel._external[0] and panel.y[0] == 6 and panel.cls[0].currentIndex() == 6
    panel.t_slider.setValue(0)
    panel._live.flush()
    np.testing.assert_array_equal(panel.current, decode_latents(state.vae_model, z[None], 6)[0])

    # hidden panel (the usual case: "Send to interpolation" switches to its tab, whose show reloads it)
    panel.hide()
    state.set_vae(vae)
    z2 = np.full(dim, -0.5, np.float32)
    panel.receive_latent(z2, 2)         # fills B
    panel.show()
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    np.testing.assert_array_equal(panel.z[1], z2)
    np.testing.assert_array_equal(panel.z[0], z)
    assert panel._external == [True, True]

    # a latent of another size belonged to the old model: the index box's image takes its place
    panel.set_endpoint(0, np.zeros(dim + 3, np.float32), 1)
    state.set_vae(new_model())
    qtbot.waitUntil(lambda: panel.latents is not None, timeout=60000)
    assert not panel._external[0]
    np.testing.assert_array_equal(panel.z[0], panel.latents.mu[panel.index[0].value()])
    panel.shutdown()


def test_map_finishes_its_projection_when_a_newer_snapshot_arrives_then_reloads_once(qtbot, loaded, monkeypatch):
    """Following a training run: a new epoch's snapshot does not throw away the UMAP in progress."""
    import dataclasses
    import threading

    import explorer.panels.latent_map as lm

    gate, projected = threading.Event(), []

    def gated_job(loaded_model, mu, method, split, seed, settings=None, progress=None, should_stop=None):
        projected.append(loaded_model.epoch)
        while not gate.is_set() and not should_stop():
            time.sleep(0.005)
        return None if should_stop() else np.asarray(mu[:, :2], np.float32) * 3

    state, panel = open_map(qtbot, loaded)
    monkeypatch.setattr(lm, "_project_job", gated_job)
    first = state.vae
    panel.method_box.setCurrentText("UMAP")
    qtbot.waitUntil(lambda: projected == [first.epoch], timeout=10_000)
    reloads = []
    original_reload = panel.reload
    panel.reload = lambda: (reloads.append(state.vae.epoch), original_reload())
    marked = []
    original_projected = panel._on_projected
    panel._on_projected = lambda xy, m: (original_projected(xy, m),
                                         marked.append((panel.status.text(), panel.scatter.title_text)))

    def new_snapshot(epoch):
        state.vae = dataclasses.replace(first, epoch=epoch)     # a newer LoadedModel of the same run
        state.snapshot_update = True
        try:
            state.vaeChanged.emit()
        finally:
            state.snapshot_update = False

    new_snapshot(first.epoch + 1)
    worker = panel.tasks.worker("projection")
    assert worker is not None and not worker.stop_requested and panel.tasks.running("projection")
    assert reloads == [] and panel.map_vae is first
    note = (f"epoch {first.epoch}; a newer snapshot (epoch {first.epoch + 1}) arrived: refreshing when this map is "
            "done")
    assert note in panel.status.text()
    new_snapshot(first.epoch + 2)                                 # collapses into the same one reload
    assert reloads == [] and f"(epoch {first.epoch + 2}) arrived" in panel.status.text()

    gate.set()                                                     # the UMAP finishes and is shown, marked ...
    qtbot.waitUntil(lambda: len(projected) == 2, timeout=20_000)  # ... then the map reloads once and projects again
    wait_idle(qtbot, panel)
    status, title = marked[0]
    assert f"epoch {first.epoch}; a newer snapshot (epoch {first.epoch + 2}) arrived" in status
    assert status.startswith("UMAP map of") and title.endswith(f"(epoch {first.epoch})")
    assert reloads == [first.epoch + 2] and projected == [first.epoch, first.epoch + 2]
    assert panel.map_vae is state.vae and panel.projection_shown == "umap"
    assert "newer snapshot" not in panel.status.text() and "epoch" not in panel.scatter.title_text

    # A model change that is not a newer snapshot (another model chosen) still restarts at once.
    gate.clear()
    panel.method_box.setCurrentText("t-SNE")
    qtbot.waitUntil(lambda: len(projected) == 3, timeout=10_000)
    running = panel.tasks.worker("projection")
    state.vae = dataclasses.replace(first, epoch=99)
    state.vaeChanged.emit()
    assert running.stop_requested and reloads[-1] == 99
    gate.set()
    wait_idle(qtbot, panel)
    panel.shutdown()


def test_map_canvas_and_bars_follow_the_look_switched_while_open(qtbot, loaded):
    """View > Dark look with the map open: its canvas, axes, legend, rings and the inspector's bar plot turn dark
    (they were hard-coded white and black), and back again."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from explorer.style import apply_theme, dark_palette

    _, panel = open_map(qtbot, loaded)
    panel.select_point(0)
    scatter, bars = panel.scatter, panel.bars
    light_bg = scatter.backgroundBrush().color()
    assert light_bg.lightness() > 200
    dark_bg, dark_text = (dark_palette().color(role) for role in (QPalette.ColorRole.Base, QPalette.ColorRole.Text))

    def drawn(widget):
        """The colours a user sees: the top-right corner's pixel of a grab (canvas, not a point or the legend)."""
        image = widget.grab().toImage()
        return image.pixelColor(image.width() - 3, 3)

    app = QApplication.instance()
    try:
        apply_theme(app, "dark")
        qtbot.wait(20)
        for plot in (scatter, bars):
            assert plot.backgroundBrush().color() == dark_bg
            assert plot.getPlotItem().getAxis("left").pen().color() == dark_text
            assert drawn(plot).lightness() < 60, plot
        assert dark_text.name() in scatter.getPlotItem().getAxis("bottom").labelString()    # the PCA axis label
        assert all(label.opts["color"] == dark_text for _, label in scatter.legend.items)
        assert dark_text.name() in scatter.legend.items[0][1].item.toHtml()                 # re-rendered, not only set
        assert scatter._marker.opts["pen"].color() == dark_text                             # the clicked point's ring
    finally:
        apply_theme(app, "light")
    qtbot.wait(20)
    assert scatter.backgroundBrush().color() == light_bg and drawn(scatter).lightness() > 200
    assert scatter._marker.opts["pen"].color().lightness() < 60
    panel.shutdown()
