"""The latent map at dataset scale, driven offscreen with the bundled VAE on the digits: lasso / rectangle selection
to the grid, search highlighting, the worst reconstructions, exports, hand-offs to the other panels through the app's
state, projection settings, PCA's variance, a layered model's 2-D layer, and the density image."""

from __future__ import annotations

import copy
import csv
import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPointF, Qt

from core.config import DataConfig
from core.data.datasets import load_dataset
from explorer.state import AppState


@pytest.fixture(scope="module")
def loaded(bundled_vae):
    return bundled_vae, load_dataset(DataConfig(name="digits", image_size=bundled_vae.meta.image_size))


def open_window(qtbot):
    """The whole main window with every panel built (the hand-offs go through it)."""
    from explorer.main_window import MainWindow

    state = AppState()
    window = MainWindow(state, defer_panels=False)
    qtbot.addWidget(window)
    window.resize(1300, 800)
    window.show()
    return state, window


def open_map(qtbot, vae, dataset, *, split="test", method="PCA", state=None):
    from explorer.panels.latent_map import LatentMapPanel

    state = state or AppState()
    panel = LatentMapPanel(state)
    qtbot.addWidget(panel)
    panel.method_box.setCurrentText(method)
    panel.split_box.setCurrentText(split)
    panel.resize(1200, 700)
    panel.show()
    state.set_vae(vae)
    state.set_dataset(dataset)
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy(), timeout=60_000)
    return state, panel


def inside_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """The even-odd rule, vectorised: an independent check of what the panel selects."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-300, y1 - y0) + x0)
    return np.flatnonzero(crosses.sum(axis=1) % 2 == 1)


def lasso_around(xy: np.ndarray, centre: np.ndarray, radius: float, vertices: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * 0.7 * np.sin(t)], axis=1)


class FakeDrag:
    """What pyqtgraph's MouseDragEvent offers the view box, for a drag along scene positions."""

    def __init__(self, scene_points, k, modifiers=Qt.KeyboardModifier.NoModifier):
        self.points, self.k, self.mods = scene_points, k, modifiers

    def button(self):
        return Qt.MouseButton.LeftButton

    def isStart(self):
        return self.k == 0

    def isFinish(self):
        return self.k == len(self.points) - 1

    def scenePos(self):
        return self.points[self.k]

    def buttonDownScenePos(self):
        return self.points[0]

    def modifiers(self):
        return self.mods

    def accept(self):
        pass


def drag(panel, path: np.ndarray, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    view = panel.scatter.view
    scene = [view.mapViewToScene(QPointF(float(x), float(y))) for x, y in path]
    for k in range(len(scene)):
        view.mouseDragEvent(FakeDrag(scene, k, modifiers))


def test_lasso_selects_the_points_inside_and_fills_the_sortable_grid(qtbot, loaded):
    from explorer.widgets.selection_grid import SHOWN_AT_MOST

    state, panel = open_map(qtbot, *loaded)
    xy, lat = panel.xy, panel.latents
    poly = lasso_around(xy, np.median(xy, 0), 0.3 * float(np.ptp(xy[:, 0])))
    with qtbot.waitSignal(state.selectionChanged, timeout=2000):
        drag(panel, np.vstack([poly, poly[:1]]), Qt.KeyboardModifier.ShiftModifier)   # Shift+drag: the lasso
    expected = inside_polygon(xy.astype(np.float64), poly)
    assert 50 < len(expected) < len(xy)
    assert set(panel.selection_rows.tolist()) == set(expected.tolist())
    assert panel.scatter.ringed("selection") == len(expected)
    grid = panel.selection_grid
    shown = min(len(expected), SHOWN_AT_MOST)
    assert panel.side_tabs.currentWidget() is grid and grid.grid.count() == shown
    np.testing.assert_array_equal(grid.grid.images, panel._images[grid.order[:shown]])
    assert f"{len(expected):,} selected (lasso)" in grid.title.text()
    # sorted by reconstruction error, worst first: the grid, its captions and the app's selection follow
    grid.sort_box.setCurrentText("worst reconstruction first")
    errors = lat.recon_error[grid.order]
    assert np.all(np.diff(errors) <= 0)
    np.testing.assert_array_equal(grid.grid.images, panel._images[grid.order[:shown]])
    first = int(grid.order[0])
    assert grid._captions[0] == f"{lat.labels[first]} {lat.recon_error[first]:.3f}".replace(" 0.", " .")
    sel = state.selection
    assert sel.source == "latent map" and len(sel) == len(expected)
    np.testing.assert_array_equal(sel.latents, lat.mu[grid.order])
    np.testing.assert_array_equal(sel.indices, grid.order)          # one split: map row = index in the split
    assert set(sel.splits) == {"test"}
    # clicking a cell shows that image in the point view
    with qtbot.waitSignal(state.imageSelected, timeout=1000) as picked:
        qtbot.mouseClick(grid.grid, Qt.MouseButton.LeftButton, pos=grid.grid._cell_rect(1).center())
    assert picked.args == ["test", int(grid.order[1])] and panel.selected == int(grid.order[1])

    # the rectangle tool: a plain drag now selects a box; a class hidden in the legend is left out
    panel.tool_box.setCurrentText("rectangle")
    panel.scatter.items[int(lat.labels[first])].setVisible(False)
    lo, hi = np.percentile(xy, 20, axis=0), np.percentile(xy, 80, axis=0)
    drag(panel, np.array([lo, (lo + hi) / 2, hi]))
    box = np.flatnonzero(np.all((xy >= lo) & (xy <= hi), axis=1) & (lat.labels != lat.labels[first]))
    assert set(panel.selection_rows.tolist()) == set(box.tolist())
    assert "(rectangle)" in grid.title.text()
    grid.clear_btn.click()
    assert len(panel.selection_rows) == 0 and state.selection is None and panel.scatter.ringed("selection") == 0
    panel.shutdown()


def test_search_highlights_and_enter_selects(qtbot, loaded):
    state, panel = open_map(qtbot, *loaded, split="all")
    lat, data = panel.latents, panel.data
    panel.selection_tools.search.setText("3")
    threes = np.flatnonzero(lat.labels == 3)
    np.testing.assert_array_equal(np.sort(panel.selection_tools.found), threes)
    assert panel.scatter.ringed("found") == len(threes) and f"{len(threes):,} found" in panel.status.text()
    panel.selection_tools.search.setText("val 4")
    assert len(panel.selection_tools.found) == 1 and data.origin(int(panel.selection_tools.found[0])) == ("val", 4)
    qtbot.keyClick(panel.selection_tools.search, Qt.Key.Key_Return)
    assert panel.selection_rows.tolist() == panel.selection_tools.found.tolist()
    assert state.selection.splits == ("val",) and state.selection.indices.tolist() == [4]
    panel.selection_tools.search.setText("no such thing")
    assert len(panel.selection_tools.found) == 0 and panel.scatter.ringed("found") == 0
    panel.shutdown()


def test_worst_reconstructions_and_exports(qtbot, loaded, tmp_path):
    state, panel = open_map(qtbot, *loaded, split="all")
    lat, data = panel.latents, panel.data
    panel.selection_tools.worst_n.setValue(30)
    panel.selection_tools.worst_btn.click()
    worst = np.argsort(-lat.recon_error, kind="stable")[:30]
    assert panel.selection_rows.tolist() == worst.tolist()
    assert "30 worst reconstructions" in panel.selection_grid.title.text()

    out = tmp_path / "selection.csv"
    panel.selection_tools.export_csv(str(out))
    lines = list(csv.DictReader(open(out)))
    assert [(r["split"], int(r["index"])) for r in lines] == [data.origin(int(r)) for r in worst]
    assert [float(r["reconstruction_error"]) for r in lines] == pytest.approx(lat.recon_error[worst], rel=1e-4)

    png = tmp_path / "selection.png"
    columns, scale = panel.selection_tools.export_png(str(png))
    h, w = panel._images[worst].shape[1:3]
    rows = -(-30 // columns)
    assert columns == 6
    with Image.open(png) as img:
        assert img.size == ((columns * (w + 1) + 1) * scale, (rows * (h + 1) + 1) * scale)
        pixels = np.asarray(img)
    first = panel._images[worst[0]][..., 0].repeat(scale, 0).repeat(scale, 1)
    np.testing.assert_array_equal(pixels[scale:scale + h * scale, scale:scale + w * scale], first)
    from core.errors import UserError

    panel.set_selection(np.zeros(0, np.int64), "")
    with pytest.raises(UserError):
        panel.selection_tools.export_csv(str(tmp_path / "empty.csv"))
    panel.shutdown()


def test_selection_is_sent_through_the_state_to_the_other_panels(qtbot, loaded):

    vae, dataset = loaded
    state, window = open_window(qtbot)
    state.set_vae(vae)
    state.set_dataset(dataset)
    panel = window.panels["latent_map"]
    panel.method_box.setCurrentText("PCA")
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy(), timeout=60_000)
    rows = np.flatnonzero(np.isin(panel.latents.labels, [2, 5]))[:12]
    panel.set_selection(rows, "test")
    sel = state.selection

    panel.selection_grid.send_actions["interpolate"].trigger()
    interp = window.panels["interpolate"]
    assert window.tabs.currentWidget() is interp
    qtbot.waitUntil(lambda: interp._path_ready(), timeout=20_000)
    np.testing.assert_array_equal(interp.z[0], sel.latents[0])
    np.testing.assert_array_equal(interp.z[1], sel.latents[1])
    assert interp.y == [int(sel.labels[0]), int(sel.labels[1])]

    window.tabs.setCurrentWidget(panel)
    panel.send_selection("restore")
    restore = window.panels["restore"]
    assert window.tabs.currentWidget() is restore
    assert restore._split == sel.splits[0] and restore.index.value() == int(sel.indices[0])

    panel.send_selection("sampler")
    sampler = window.panels["sampler"]
    assert window.tabs.currentWidget() is sampler
    assert sampler.chosen_classes() == [2, 5]
    # the grid's z come from a mixture fitted to the selected latents, not from the prior: they lie around the
    # selection's mean, which is far from the prior's (the origin) for a region of two classes
    from explorer.panels.sampler import REGION

    assert sampler.source.currentIndex() == REGION
    qtbot.waitUntil(lambda: not sampler.is_sampling() and "sent from the latent map" in sampler.vae_title.text(),
                    timeout=20_000)
    assert "12 images sent from the latent map (test)" in sampler.vae_title.text()
    centre = sel.latents.mean(axis=0)
    spread = np.linalg.norm(sel.latents - centre, axis=1).mean()
    assert np.linalg.norm(sampler._z - centre, axis=1).mean() < np.linalg.norm(sampler._z, axis=1).mean()
    assert np.linalg.norm(sampler._z.mean(axis=0) - centre) < spread
    # another model shown: the region (its latents) no longer applies, and the panel says so instead of sampling
    from core.training.checkpoint import load_model

    # another model shown (as a newer training snapshot is): the old grid is marked out of date at once, and the
    # same images are encoded by the new model and the region refitted, not the old latents decoded by it
    state.set_vae(load_model(vae.path))
    assert "out of date: encoding the 12 images" in sampler.vae_title.text()
    qtbot.waitUntil(lambda: not sampler.is_sampling() and sampler.region is not None, timeout=20_000)
    assert sampler._region_model is state.vae_model and "out of date" not in sampler.vae_title.text()
    assert "encoded by this model" in sampler.vae_title.text()
    # a selection of another dataset's images is refused in one line (its indices would pick other images)
    state.set_dataset(load_dataset(DataConfig(name="digits", image_size=vae.meta.image_size)))
    assert "another dataset" in sampler.use_selection(sel)
    window.close()


def test_a_selection_reaches_panels_that_show_another_model_through_their_own_encoder(qtbot, loaded):
    """The Sampler and Interpolation pinned to model A, the map on model B: the selected images are encoded by A
    (their B latents would mean nothing to A's decoder)."""
    from core.latent.encoding import encode_indices
    from core.training.checkpoint import load_model
    from explorer.panels.sampler import REGION

    vae, dataset = loaded
    model_a = load_model(vae.path)
    changed = copy.deepcopy(model_a.model)
    with torch.no_grad():
        changed.mu_head[-1].weight.mul_(0.5)            # B encodes the same images elsewhere
    model_b = dataclasses.replace(model_a, model=changed, path=None)   # an in-memory model, as a live snapshot is
    state, window = open_window(qtbot)
    state.set_dataset(dataset)
    a = state.set_model(model_a)
    state.set_model(model_b)                           # B is shown app-wide ...
    window.views["sampler"].pin("vae", a)              # ... A in the Sampler and in Interpolation
    window.views["interpolate"].pin("vae", a)
    panel = window.panels["latent_map"]
    panel.method_box.setCurrentText("PCA")
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy() and panel.map_vae is state.vae,
                    timeout=60_000)
    rows = np.flatnonzero(panel.latents.labels == 4)[:40]
    panel.set_selection(rows, "test")
    sel = state.selection
    assert sel.model is model_b.model
    own = encode_indices(model_a.model, dataset, sel.splits, sel.indices)
    assert np.abs(own - sel.latents).max() > 0.1        # the two models really disagree

    panel.send_selection("sampler")
    sampler = window.panels["sampler"]
    assert sampler.source.currentIndex() == REGION
    qtbot.waitUntil(lambda: not sampler.is_sampling() and sampler.region is not None, timeout=20_000)
    assert sampler._region_model is model_a.model and "encoded by this model" in sampler.vae_title.text()
    means = sampler.region.classes[4].means              # 40 points: one component, at the points' mean
    assert means.shape == (1, own.shape[1])
    np.testing.assert_allclose(means[0], own.mean(axis=0), atol=1e-4)
    assert np.abs(means[0] - sel.latents.mean(axis=0)).max() > 0.05

    window.tabs.setCurrentWidget(panel)
    panel.send_selection("interpolate")
    interp = window.panels["interpolate"]
    qtbot.waitUntil(lambda: interp._path_ready(), timeout=20_000)
    np.testing.assert_allclose(interp.z[0], own[0], atol=1e-5)
    np.testing.assert_allclose(interp.z[1], own[1], atol=1e-5)
    window.close()


def test_another_model_shown_clears_the_maps_selection_everywhere_it_was_shown(qtbot, loaded):
    """After another model is shown the map's rows mean other latents: its selection goes from the grid, the tab's
    title and the app's state together; the Sampler's region (a hand-off) stays, named as sent, not as selected."""
    from core.training.checkpoint import load_model

    vae, dataset = loaded
    state, window = open_window(qtbot)
    state.set_vae(vae)
    state.set_dataset(dataset)
    panel = window.panels["latent_map"]
    panel.method_box.setCurrentText("PCA")
    window.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy(), timeout=60_000)
    panel.set_selection(np.arange(50), "test")
    assert panel.side_tabs.tabText(1) == "selection (50)" and len(state.selection) == 50
    panel.send_selection("sampler")
    sampler = window.panels["sampler"]
    qtbot.waitUntil(lambda: not sampler.is_sampling() and sampler.region is not None, timeout=20_000)

    window.tabs.setCurrentWidget(panel)
    state.set_vae(load_model(vae.path))          # another model shown
    qtbot.waitUntil(lambda: panel.xy is not None and not panel.tasks.busy(), timeout=60_000)
    assert panel.selection_grid.sorted_rows().size == 0
    assert panel.side_tabs.tabText(1) == "selection"
    assert state.selection is None
    qtbot.waitUntil(lambda: not sampler.is_sampling() and sampler._region_model is state.vae_model, timeout=20_000)
    title = sampler.vae_title.text()
    assert "50 images sent from the latent map" in title and "selected" not in title, title
    window.close()


def test_a_sampler_latent_reaches_an_interpolation_of_another_model_as_the_image_it_shows(qtbot, loaded):
    """The Sampler pinned to model A, Interpolation to model B: a sample sent across is the image A drew, encoded by
    B (A's latent decoded by B would be another picture), so the path starts at the image the user sent."""
    from core.latent.encoding import decode_latents, encode_images
    from core.training.checkpoint import load_model
    from explorer.panels.interpolate import torch_images

    vae, dataset = loaded
    model_a = load_model(vae.path)
    changed = copy.deepcopy(model_a.model)
    with torch.no_grad():
        changed.mu_head[-1].weight.mul_(0.5)
        changed.mu_head[-1].bias.add_(0.5)
    model_b = dataclasses.replace(model_a, model=changed, path=None)
    state, window = open_window(qtbot)
    state.set_dataset(dataset)
    a = state.set_model(model_a)
    b = state.set_model(model_b)
    window.views["sampler"].pin("vae", a)
    window.views["interpolate"].pin("vae", b)
    sampler, interp = window.panels["sampler"], window.panels["interpolate"]
    window.tabs.setCurrentWidget(sampler)
    qtbot.waitUntil(lambda: sampler.images is not None and not sampler.is_sampling(), timeout=30_000)
    sampler.select(3)
    sampler.send_btn.click()
    assert window.tabs.currentWidget() is interp
    label = interp.y[0]
    expected = encode_images(model_b.model, torch_images(sampler.images[3:4]), [label])[0]
    np.testing.assert_allclose(interp.z[0], expected, atol=1e-5)
    assert np.abs(interp.z[0] - sampler._z[3]).max() > 0.05     # not A's latent taken as B's
    np.testing.assert_array_equal(decode_latents(model_a.model, sampler._z[3][None], label)[0], sampler.images[3])
    window.close()


def test_projection_settings_reach_the_job_and_pca_names_its_variance(qtbot, loaded, monkeypatch):
    import explorer.panels.latent_map as lm
    from core.latent.projection import ProjectionSettings, pca_2d_with_variance

    state, panel = open_map(qtbot, *loaded)
    _, explained = pca_2d_with_variance(panel.latents.mu)
    bottom = panel.scatter.getAxis("bottom")
    assert bottom.isVisible() and f"PC1 ({explained[0]:.1%} of variance)" in bottom.labelText
    assert f"PC2 ({explained[1]:.1%} of variance)" in panel.scatter.getAxis("left").labelText
    calls = []

    def job(loaded_model, mu, method, split, seed, settings=None, progress=None, should_stop=None):
        calls.append((method, settings))
        return np.asarray(mu[:, :2], np.float32)

    monkeypatch.setattr(lm, "_project_job", job)
    assert not panel.neighbours_box.isVisible()          # PCA has no settings
    panel.method_box.setCurrentText("UMAP")
    assert panel.neighbours_box.isVisible() and not panel.perplexity_box.isVisible()
    panel.neighbours_box.setValue(31)
    panel.min_dist_box.setValue(0.4)
    # (the jobs of the earlier settings, cancelled, may still call in after it from their threads: not calls[-1])
    wanted = ("umap", ProjectionSettings(n_neighbors=31, min_dist=0.4))
    qtbot.waitUntil(lambda: not panel.tasks.busy() and wanted in calls, timeout=10_000)
    assert not panel.scatter.getAxis("bottom").isVisible()   # UMAP's axes mean nothing
    n = len(calls)
    panel.perplexity_box.setValue(12)                    # a t-SNE setting does not redo UMAP
    assert len(calls) == n
    panel.method_box.setCurrentText("t-SNE")
    panel.perplexity_box.setValue(9)
    qtbot.waitUntil(lambda: not panel.tasks.busy() and any(m == "tsne" and st.perplexity == 9 for m, st in calls),
                    timeout=10_000)
    panel.shutdown()


@pytest.mark.slow   # a real UMAP / a training: `make test-fast` leaves it out
def test_a_layered_model_maps_one_layer_and_a_2d_layer_on_its_own_axes(qtbot, loaded):
    from core.latent.encoding import decode_latents

    vae, dataset = loaded
    class TwoLayers(type(vae.model)):   # the bundled VAE, its latent listed as a hierarchical VAE lists layers
        latent_layers = (("top", 2), ("bottom", vae.model.latent_dim - 2))

    model = copy.deepcopy(vae.model)
    model.__class__ = TwoLayers
    layered = dataclasses.replace(vae, model=model, path=None)
    state, panel = open_map(qtbot, layered, dataset, method="UMAP")
    assert panel.layer_box.isVisible() and panel.layer_box.count() == 2
    panel.layer_box.setCurrentIndex(0)
    qtbot.waitUntil(lambda: panel.projection_shown == "latent" and not panel.tasks.busy(), timeout=10_000)
    np.testing.assert_array_equal(panel.xy, panel.latents.mu[:, :2])
    assert not panel.method_box.isEnabled() and "top z0" in panel.scatter.getAxis("bottom").labelText
    assert panel.scatter.title_text.startswith("2-D latent of") and "layer top" in panel.scatter.title_text
    # decoding a map position changes only the top layer; the bottom layer is the nearest point's
    p = np.median(panel.xy, axis=0) + 0.01
    panel.click_view(QPointF(float(p[0]), float(p[1])))
    z, _ = panel._current_z
    nearest = int(panel.mapper.tree.query(p)[1])
    np.testing.assert_array_equal(z[2:], panel.latents.mu[nearest, 2:])
    label = int(panel.mapper.label_at(p[None])[0])
    np.testing.assert_array_equal(panel.recon_view.image(), decode_latents(model, z[None], label)[0])
    panel.shutdown()


def test_many_points_in_view_draw_as_a_density_image_and_zooming_in_brings_the_points_back(qtbot, loaded,
                                                                                             monkeypatch):
    import explorer.widgets.latent_scatter as ls

    monkeypatch.setattr(ls, "DENSITY_ABOVE", 500)      # the digits' 1,797 points stand in for 70,000
    monkeypatch.setattr(ls, "RINGS_AT_MOST", 100)
    state, panel = open_map(qtbot, *loaded, split="all")
    scatter = panel.scatter
    assert scatter.density_shown and all(item.opacity() == 0 for item in scatter.items)
    image = scatter._density.image
    assert image is not None and (image[..., 3] > 0).sum() > 300
    full_alpha = image[..., 3].astype(int)
    # a large selection over the density image: no rings; its cells stay bright, the others are dimmed
    ones = np.flatnonzero(panel.latents.labels == 1)
    panel.set_selection(ones, "test")
    assert scatter.selection_in_image() and scatter.ringed("selection") == 0
    dimmed = scatter._density.image[..., 3].astype(int)
    filled = full_alpha > 0
    kept = filled & (dimmed == full_alpha)
    assert kept.sum() > 0 and (dimmed[filled & ~kept] < full_alpha[filled & ~kept]).all()
    assert kept.sum() < filled.sum() / 3         # one class of ten keeps its cells
    # a small one: rings again, the image undimmed
    panel.set_selection(ones[:50], "test")
    assert not scatter.selection_in_image() and scatter.ringed("selection") == 50
    np.testing.assert_array_equal(scatter._density.image[..., 3], full_alpha)
    panel.set_selection(ones, "test")
    centre = np.median(panel.xy, axis=0).astype(float)
    span = np.ptp(panel.xy, axis=0).astype(float) * 0.1
    scatter.view.setRange(xRange=(centre[0] - span[0], centre[0] + span[0]),
                          yRange=(centre[1] - span[1], centre[1] + span[1]), padding=0)
    qtbot.waitUntil(lambda: not scatter.density_shown, timeout=2000)
    assert all(item.opacity() == 1 for item in scatter.items) and scatter._density.image is None
    assert scatter.ringed("selection") == len(ones)      # points again: the selection is ringed
    # hover still finds the point under the cursor through the KD-tree
    i = int(np.argmin(np.linalg.norm(panel.xy - centre, axis=1)))
    panel._on_hover(QPointF(*panel.xy[i].astype(float)))
    assert panel.hover_index is not None and np.allclose(panel.xy[panel.hover_index], panel.xy[i])
    panel.shutdown()
