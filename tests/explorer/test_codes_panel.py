"""A VQ-VAE in the app, on a tiny digits VQ-VAE (and its code prior) trained once for this module: opening it breaks
no panel (the continuous-latent panels say so in one line, the Sampler draws from the code prior, Denoise/Enhance
restores through its codes); the Codes tab shows an image's code grid, painting a cell changes that cell's code and
the decode near it only, the codebook usage counts every cell of the split; a VAE in the Codes tab is one line."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt

from core.config import Config, DataConfig, TrainConfig, VQVAEConfig
from core.data.datasets import load_dataset
from core.images import as_float
from core.training.checkpoint import load_model
from core.training.trainer import Trainer
from explorer.panel_view import PanelView
from explorer.state import VQ_LINE, AppState

DATA = DataConfig("digits", image_size=16)
VQ = VQVAEConfig(codebook_size=32, code_dim=8, width=8, prior_width=32, prior_layers=1, prior_heads=2,
                 prior_dropout=0.0)


def _config(model: VQVAEConfig, epochs: int) -> Config:
    return Config(DATA, model, TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, threads=1, preview_every=0,
                                           log_every=5))


@pytest.fixture(scope="module")
def tiny_vq(tmp_path_factory):
    """(the VQ-VAE with its code prior, loaded from its checkpoint; the digits at 16 px): ~5 s of training."""
    root = tmp_path_factory.mktemp("codes")
    dataset = load_dataset(DATA)
    assert list(Trainer(_config(VQ, 3), run_dir=root / "vq", dataset=dataset).run())[-1].status == "completed"
    first = root / "vq" / "checkpoints" / "best.safetensors"
    prior = _config(dataclasses.replace(VQ, stage="prior", first_stage=str(first)), 2)
    assert list(Trainer(prior, run_dir=root / "prior", dataset=dataset).run())[-1].status == "completed"
    return load_model(root / "prior" / "checkpoints" / "best.safetensors"), dataset


@pytest.fixture
def codes_panel(qtbot, tiny_vq):
    from explorer.panels.codes import CodesPanel

    loaded, dataset = tiny_vq
    state = AppState()
    state.vae, state.dataset = loaded, dataset
    panel = CodesPanel(PanelView(state))
    qtbot.addWidget(panel)
    panel.resize(1200, 760)
    panel.show()
    qtbot.waitUntil(lambda: panel.model.usage is not None and panel.model.looks is not None, timeout=60_000)
    return panel


def test_opening_a_vq_vae_breaks_no_panel(qtbot, tiny_vq, monkeypatch):
    import explorer.widgets.dialogs as dialogs
    from explorer.main_window import MainWindow

    loaded, dataset = tiny_vq
    errors: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: errors.append(f"{kind.__name__}: {value}"))
    monkeypatch.setattr(dialogs, "show_error", lambda _parent, message, details="": errors.append(message))
    state = AppState()
    state.settings.set_value("latent_map.projection", "pca")   # the codebook map at once (no cold UMAP import)
    window = MainWindow(state)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    state.set_dataset(dataset)
    state.set_model(loaded)                                   # as File > Open checkpoint does
    panels = window.panels
    assert "codes" in panels and len(panels) == window.tabs.count()
    for i in range(window.tabs.count()):
        window.tabs.setCurrentIndex(i)                        # each panel does its work when shown
        qtbot.wait(50)
        for panel in panels.values():
            tasks = getattr(panel, "tasks", None)
            if tasks is not None:
                qtbot.waitUntil(lambda t=tasks: not t.busy(), timeout=60_000)
    assert errors == []
    for key in ("interpolate", "dataset_browser"):
        assert panels[key].status.text() == VQ_LINE, key
    assert panels["latent_map"].codebook.xy.shape == (32, 2)                 # the latent map maps the codebook
    sampler = panels["sampler"]
    qtbot.waitUntil(lambda: sampler.images is not None, timeout=60_000)
    assert sampler.images.shape[1:] == (16, 16, 1) and sampler.images.std() > 10      # drawn from the code prior
    codes = panels["codes"]
    assert codes.model.codes.shape == (4, 4) and not codes.content.isHidden()


def test_the_vq_vae_is_denoise_enhance_s_restorer(tiny_vq):
    """Its restorer is the image through its nearest codes (no latent to refine): it cleans noisy digits."""
    from core.restoration.benchmark import restore_row

    loaded, dataset = tiny_vq
    clean = as_float(dataset.test.images[:32])
    rows = {item["restorer"]: item for item in restore_row(clean, "gaussian", 0.3, vae=loaded.model)}
    assert [k for k in rows if not k.startswith("classical")] == ["corrupted", "vae"]
    assert rows["vae"]["psnr"].mean() > rows["corrupted"]["psnr"].mean() + 2, (rows["vae"]["psnr"].mean(),
                                                                               rows["corrupted"]["psnr"].mean())


def test_the_codes_tab_shows_the_image_s_code_grid(codes_panel, tiny_vq):
    loaded, dataset = tiny_vq
    m = codes_panel.model
    codes_panel.pick("test", 5)
    image = dataset.test.images[5:6]
    expected = loaded.model.encode_codes(as_float(image))[0].numpy()
    assert m.codes.shape == (loaded.model.grid, loaded.model.grid) == (4, 4)
    assert np.array_equal(m.codes, expected) and np.array_equal(m.encoded, expected)
    assert np.allclose(m.decoded, loaded.model.decode_codes(torch.from_numpy(expected)[None])[0].numpy(), atol=1e-6)
    assert codes_panel.palette.count() == 32 and m.looks.shape == (32, 1, 16, 16)


def test_painting_a_cell_changes_its_code_and_the_decode_near_it_only(qtbot, codes_panel):
    m = codes_panel.model
    codes_panel.pick("test", 3)
    before_codes, before = m.codes.copy(), m.decoded.copy()
    new = next(k for k in np.argsort(-m.usage) if k != before_codes[0, 0])   # a well-used code the cell has not
    codes_panel.palette.setCurrentRow(int(new))
    assert m.brush == new
    x, y = codes_panel.grid_view.cell_center(0, 0)
    qtbot.mouseClick(codes_panel.grid_view, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    changed = np.argwhere(m.codes != before_codes)
    assert changed.tolist() == [[0, 0]] and m.codes[0, 0] == new
    diff = np.abs(m.decoded - before)[0]                     # (16, 16): cell (0, 0) covers pixels 0..3
    near, far = diff[:8, :8], diff.copy()
    far[:8, :8] = 0
    assert near.max() > 0.05, near.max()
    assert far.max() < 0.5 * near.max() and far.sum() < 0.25 * diff.sum(), (far.max(), near.max())
    assert "1 repainted" in codes_panel.decoded.title.text()
    codes_panel.reset_button.click()
    assert np.array_equal(m.codes, before_codes) and np.allclose(m.decoded, before)


def test_the_usage_histogram_counts_every_cell_of_the_split(codes_panel, tiny_vq):
    loaded, dataset = tiny_vq
    m = codes_panel.model
    assert m.usage_split == "test"
    assert int(m.usage.sum()) == len(dataset.test) * 16            # 4x4 cells per image
    direct = torch.bincount(loaded.model.encode_codes(as_float(dataset.test.images)).reshape(-1), minlength=32)
    assert np.array_equal(m.usage, direct.numpy())
    heights = np.asarray(codes_panel.histogram.bars.opts["height"])
    assert np.array_equal(heights, m.usage)
    dead = np.flatnonzero(direct.numpy() == 0)
    assert np.array_equal(m.dead_codes(), dead)
    assert np.array_equal(np.asarray(codes_panel.histogram.dead.getData()[0]), dead)
    assert f"{32 - len(dead)} of 32 codes used, {len(dead)} dead" in codes_panel.usage_line.text()


def test_a_vae_in_the_codes_tab_is_one_plain_line(qtbot, bundled_vae):
    from explorer.panels.codes import NOT_VQ, CodesPanel

    state = AppState()
    state.vae = bundled_vae
    state.dataset = load_dataset(DataConfig("digits", image_size=bundled_vae.meta.image_size))
    panel = CodesPanel(PanelView(state))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.wait(50)
    assert panel.status.text() == NOT_VQ and not panel.content.isVisible() and not panel.tasks.busy()
    assert panel.model.vq is None and panel.model.codes is None


def test_denoise_enhance_runs_the_vq_vae_as_its_restorer(qtbot, tiny_vq):
    from explorer.panels.restore import RestorePanel

    loaded, dataset = tiny_vq
    state = AppState()
    state.set_dataset(dataset)
    state.set_vae(loaded)
    panel = RestorePanel(state)
    qtbot.addWidget(panel)
    panel.index.setValue(5)
    panel.corruption.setCurrentText("gaussian")
    panel.run_restore()
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
        pass
    vae_cell = panel.cells["vae"]
    assert vae_cell.image is not None and vae_cell.image.shape == (1, 16, 16) and "PSNR" in vae_cell.info.text()
    assert panel.cells["vae-refined"].info.text() == "a VQ-VAE: no latent to refine"
    assert panel.status.text() == "done"
    panel.shutdown()


def test_a_vq_vae_shares_the_vae_s_slot_closing_it_shows_the_vae_again(tiny_vq, bundled_vae):
    loaded, _ = tiny_vq
    state = AppState()
    vae_entry = state.set_model(bundled_vae)
    vq_entry = state.set_model(loaded)
    assert state.vae is loaded and state.shown.get("vae") is vq_entry and state.shown.get("vqvae") is vq_entry
    assert state.shown.get(vae_entry.kind) is not vae_entry        # the models list marks one shown model per slot
    state.close(vq_entry)
    assert state.vae is bundled_vae and state.shown.get("vae") is vae_entry


def test_the_codes_tab_pins_the_vq_vae_while_the_app_shows_a_vae(qtbot, tiny_vq, bundled_vae):
    from explorer.panels.codes import CodesPanel
    from explorer.widgets.panel_header import PanelHeader

    loaded, dataset = tiny_vq
    state = AppState()
    state.set_dataset(dataset)
    vq_entry = state.set_model(loaded)
    state.set_model(bundled_vae)                                   # the app shows the VAE
    view = PanelView(state)
    panel = CodesPanel(view)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.status.text().startswith("The code editor needs a VQ-VAE")
    header = PanelHeader()
    qtbot.addWidget(header)
    header.show_view(view, CodesPanel.uses)
    combo = header.combos["vae"]
    assert combo.findData(vq_entry.id) > 0                         # the VQ-VAE is offered as a pin
    view.pin("vae", vq_entry)
    qtbot.waitUntil(lambda: panel.model.codes is not None and not panel.tasks.busy(), timeout=60_000)
    assert panel.model.codes.shape == (4, 4) and not panel.content.isHidden()


# ---- the latent map of a VQ-VAE: its codebook ---------------------------------------------------------------------
def _shown_map(qtbot, tiny_vq, method: str):
    """The latent map panel with the tiny VQ-VAE, `method` chosen, shown (its codes are counted on a worker)."""
    from explorer.panels.latent_map import LatentMapPanel

    loaded, dataset = tiny_vq
    state = AppState()
    state.vae, state.dataset = loaded, dataset
    panel = LatentMapPanel(state)
    qtbot.addWidget(panel)
    panel.method_box.setCurrentText(method)
    panel.resize(1200, 760)
    panel.show()
    return panel


@pytest.fixture
def codebook_map(qtbot, tiny_vq):
    panel = _shown_map(qtbot, tiny_vq, "PCA")
    qtbot.waitUntil(lambda: panel.codebook.xy is not None and not panel.tasks.busy(), timeout=60_000)
    return panel


def _test_codes(loaded, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each test image's codes (N, cells) and the class of each cell (N * cells,), counted here independently."""
    codes = loaded.model.encode_codes(as_float(dataset.test.images)).reshape(len(dataset.test), -1).numpy()
    return codes, np.repeat(dataset.test.labels.numpy(), codes.shape[1])


def test_the_latent_map_of_a_vq_vae_maps_its_code_vectors(codebook_map, tiny_vq):
    from core.latent.projection import pca_2d

    loaded, dataset = tiny_vq
    cb = codebook_map.codebook
    assert codebook_map.body.currentWidget() is cb.page and cb.method_shown == "pca"
    np.testing.assert_allclose(cb.xy, pca_2d(loaded.model.codebook.numpy()), atol=1e-5)     # a point is a code
    codes, cell_class = _test_codes(loaded, dataset)
    counts = np.bincount(codes.reshape(-1), minlength=32)
    np.testing.assert_array_equal(cb.use.cells, counts)
    for k in np.flatnonzero(counts):
        assert cb.use.top_class()[k] == np.bincount(cell_class[codes.reshape(-1) == k]).argmax()
    # used codes are points sized by their use, dead ones (if any) crosses
    used, dead = cb.scatter.used.data, cb.scatter.dead.data
    assert sorted(used["data"].tolist()) == np.flatnonzero(counts).tolist()
    assert sorted(dead["data"].tolist()) == np.flatnonzero(counts == 0).tolist()
    size_of = dict(zip(used["data"].tolist(), used["size"].tolist(), strict=True))
    assert size_of[int(counts.argmax())] == max(size_of.values()) > min(size_of.values())
    # the labels say what a point is; the continuous map's tools are out of the way
    assert "32 code vectors" in cb.scatter.getPlotItem().titleLabel.text
    assert "a point is a code, not an image" in codebook_map.status.text()
    assert f"{int((counts == 0).sum())} dead" in codebook_map.status.text()
    assert cb.colour_box.isVisibleTo(codebook_map) and not codebook_map.colour_box.isVisibleTo(codebook_map)


def test_clicking_a_code_shows_its_look_and_the_images_that_use_it(qtbot, codebook_map, tiny_vq):
    loaded, dataset = tiny_vq
    cb = codebook_map.codebook
    codes, _ = _test_codes(loaded, dataset)
    k = int(np.bincount(codes.reshape(-1), minlength=32).argmax())
    qtbot.mouseClick(cb.scatter.viewport(), Qt.MouseButton.LeftButton, pos=cb.scatter.scene_position(k))
    assert cb.selected == k
    look = loaded.model.decode_codes(torch.full((1, 4, 4), k))[0, 0].numpy()
    np.testing.assert_allclose(cb.inspector.look.image()[..., 0] / 255.0, look, atol=1 / 255)
    per_image = (codes == k).sum(axis=1)
    expected = np.lexsort((np.arange(len(per_image)), -per_image))[:8]
    assert cb.shown_rows.tolist() == expected.tolist() and per_image[expected].min() > 0
    assert cb.inspector.images.count() == 8 and f"code {k}:" in cb.inspector.info.text()
    # the image's code-k cells are tinted, the others are not
    first = cb.inspector.images.images[0]
    cells = np.kron((codes[expected[0]] == k).reshape(4, 4), np.ones((4, 4), bool))
    grey = dataset.test.images[int(expected[0]), 0].numpy()
    assert np.array_equal(first[~cells, 0], grey[~cells]) and (first[cells, 0] > first[cells, 2]).all()
    # clicking it picks the image for the other tabs (the Codes tab opens it)
    picked = []
    codebook_map.state.imageSelected.connect(lambda split, index: picked.append((split, index)))
    cb.inspector.images.clicked.emit(0)
    assert picked == [("test", int(expected[0]))]


def test_the_codebook_map_runs_t_sne_on_the_worker(qtbot, codebook_map):
    cb = codebook_map.codebook
    pca = cb.xy.copy()
    codebook_map.method_box.setCurrentText("t-SNE")
    qtbot.waitUntil(lambda: cb.method_shown == "tsne", timeout=60_000)
    assert cb.xy.shape == (32, 2) and not np.allclose(cb.xy, pca)
    assert codebook_map.status.text().startswith("t-SNE map of the 32 code vectors")


def test_a_vae_after_the_vq_vae_gets_the_latents_map_back(qtbot, codebook_map):
    from pathlib import Path

    state, cb = codebook_map.state, codebook_map.codebook
    vae = load_model(Path(__file__).resolve().parents[2] / "resources" / "digits-vae.safetensors")
    state.vae = vae
    state.vaeChanged.emit()
    qtbot.waitUntil(lambda: codebook_map.latents is not None and not codebook_map.tasks.busy(), timeout=60_000)
    assert codebook_map.body.currentIndex() == 0 and not cb.active and cb.use is None and cb.xy is None
    assert codebook_map.colour_box.isVisibleTo(codebook_map) and not cb.colour_box.isVisibleTo(codebook_map)
    assert codebook_map.scatter.title_text.startswith("PCA of")


def test_an_image_picked_anywhere_has_its_codes_ringed(codebook_map, tiny_vq):
    loaded, dataset = tiny_vq
    cb = codebook_map.codebook
    codebook_map.state.imageSelected.emit("test", 7)               # as the Codes or the Dataset tab does
    expected = np.unique(loaded.model.encode_codes(as_float(dataset.test.images[7:8])).numpy())
    assert sorted(cb.scatter.rings.data["data"].tolist()) == expected.tolist()
    np.testing.assert_allclose(np.c_[cb.scatter.rings.data["x"], cb.scatter.rings.data["y"]], cb.xy[expected])
    assert codebook_map.status.text().startswith(f"test #7 (class {int(dataset.test.labels[7])}) uses "
                                                 f"{len(expected)} codes")
    codebook_map.state.imageSelected.emit("train", 10 ** 6)        # not among the counted images: no rings
    assert len(cb.scatter.rings.data) == 0


def test_the_codebook_map_of_all_splits_finds_each_image_in_its_split(qtbot, codebook_map, tiny_vq):
    _, dataset = tiny_vq
    cb = codebook_map.codebook
    codebook_map.split_box.setCurrentText("all")
    qtbot.waitUntil(lambda: cb.use is not None and cb.use.split == "all splits" and not codebook_map.tasks.busy(),
                    timeout=60_000)
    sizes = {name: len(dataset.split(name)) for name in ("train", "val", "test")}
    assert len(cb.use.codes) == sum(sizes.values()) and int(cb.use.cells.sum()) == 16 * sum(sizes.values())
    names, index = cb.origins
    for name in sizes:                                    # the last image of each split, read back from its split
        row = int(np.flatnonzero(names == name)[-1])
        assert index[row] == sizes[name] - 1
        assert np.array_equal(cb.image_rows(np.array([row]))[0], dataset.split(name).images[-1].numpy())
    assert "all splits" in codebook_map.status.text()


@pytest.mark.parametrize("screen", [(1280, 800), (1024, 700)])
def test_the_codes_tab_fits_the_window_without_a_sideways_scroll(qtbot, tiny_vq, screen):
    """With a VQ-VAE shown, the Codes tab (its code grid, the two images, the palette, the usage line) fits a 1024x700
    and a 1280x800 window as every tab does (test_window_fits_small_screens.py): its minimum width is within its page,
    which shows no scroll bar (it needed 921 px, where a 1024-px window has 804 for it). So does the codebook map."""
    from explorer.main_window import MainWindow

    loaded, dataset = tiny_vq
    state = AppState()
    state.settings.set_value("latent_map.projection", "pca")   # the codebook map at once (no cold UMAP import)
    window = MainWindow(state)
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    state.set_dataset(dataset)
    state.set_model(loaded)
    codes = window.panels["codes"]
    window.tabs.setCurrentWidget(codes)
    qtbot.waitUntil(lambda: codes.model.usage is not None and codes.model.looks is not None, timeout=60_000)
    codes.pick("test", 3)
    window.resize(*screen)
    qtbot.wait(50)
    page = window.tabs.page(window.tabs.currentIndex())
    assert window.size().toTuple() == screen
    need = codes.minimumSizeHint().expandedTo(codes.minimumSize())
    assert need.width() <= page.viewport().width() and need.height() <= page.viewport().height(), need
    assert not page.horizontalScrollBar().isVisible() and not page.verticalScrollBar().isVisible()
    assert codes.size() == page.viewport().size()
    for part in (codes.grid_view, codes.original.image, codes.decoded.image, codes.palette, codes.histogram):
        assert part.isVisible() and part.width() >= 120, (type(part).__name__, part.width())
    assert "test image 3" in codes.original.title.text()
    # the latent map of the VQ-VAE (its codebook) fits as well
    latent_map = window.panels["latent_map"]
    window.tabs.setCurrentWidget(latent_map)
    qtbot.waitUntil(lambda: latent_map.codebook.xy is not None and not latent_map.tasks.busy(), timeout=60_000)
    qtbot.wait(50)
    page = window.tabs.page(window.tabs.currentIndex())
    assert window.size().toTuple() == screen
    assert latent_map.minimumSizeHint().width() <= page.viewport().width()
    assert not page.horizontalScrollBar().isVisible() and not page.verticalScrollBar().isVisible()


def test_a_map_chosen_while_the_codes_are_counted_is_the_map_shown(qtbot, tiny_vq):
    """The map's method changed while the VQ-VAE's codes are still being counted: once counted, the codebook is
    mapped with the method chosen last (the screenshot tool found t-SNE / UMAP shown under a box saying PCA)."""
    panel = _shown_map(qtbot, tiny_vq, "t-SNE")
    qtbot.waitUntil(lambda: panel.codebook.active and panel.tasks.busy(), timeout=10_000)
    assert panel.codebook.use is None                   # still counting
    panel.method_box.setCurrentText("PCA")
    qtbot.waitUntil(lambda: panel.codebook.xy is not None and not panel.tasks.busy(), timeout=60_000)
    qtbot.wait(50)
    assert panel.codebook.method_shown == "pca" and panel.status.text().startswith("PCA map of the 32 code vectors")
