"""The Denoise / Enhance panel: runs a restoration on a worker and shows the row; the batch table fills; cancel
works; the difference toggle and PNG export work; image files and imageSelected pick the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import Config, DataConfig, DiffusionConfig, VAEConfig
from core.models import build_model
from core.training.checkpoint import LoadedModel
from explorer.panels.restore import RestorePanel
from explorer.state import AppState


@pytest.fixture(scope="module")
def digits():
    from core.data.datasets import load_dataset

    return load_dataset(DataConfig(name="digits", image_size=16))


def _loaded(cfg, meta) -> LoadedModel:
    torch.manual_seed(0)
    return LoadedModel(build_model(cfg, meta).eval(), Config(DataConfig(), cfg), meta, None, 0, 0, {})


@pytest.fixture
def panel(qtbot, digits):
    state = AppState()
    state.set_dataset(digits)
    state.set_vae(_loaded(VAEConfig(latent_dim=4, width=4, stages=2), digits.meta))
    state.set_diffusion(_loaded(DiffusionConfig(base_channels=8, timesteps=40), digits.meta))
    p = RestorePanel(state)
    qtbot.addWidget(p)
    p.refine_steps.setValue(3)
    p.diffusion_samples.setValue(1)
    yield p
    p.shutdown()


def test_panel_runs_a_restoration_and_shows_the_row(qtbot, panel, tmp_path):
    panel.index.setValue(5)
    panel.corruption.setCurrentText("gaussian")
    assert panel.strength.value() == pytest.approx(0.3)
    panel.run_restore()
    assert panel.busy() and not panel.run_button.isEnabled()
    with qtbot.waitSignal(panel.worker.finished, timeout=60_000):
        pass
    for key in ("clean", "corrupted", "vae", "vae-refined", "diffusion", "classical"):
        cell = panel.cells[key]
        assert cell.image is not None and cell.image.shape == (1, 16, 16), key
        assert cell.grid.count() == 1
    assert "PSNR" in panel.cells["diffusion"].info.text() and " s" in panel.cells["diffusion"].info.text()
    assert "tv" in panel.cells["classical"].title.text()
    assert panel.status.text() == "done" and panel.run_button.isEnabled()
    before = panel.cells["vae"].grid.to_image()
    panel.diff_toggle.setChecked(True)
    assert panel.cells["vae"].grid.to_image() != before
    out = tmp_path / "row.png"
    panel.export_png(str(out))
    assert Image.open(out).size[0] > 200


def test_mask_restoration_keeps_known_pixels_in_every_cell(qtbot, panel):
    panel.corruption.setCurrentText("mask-box")
    panel.run_restore()
    with qtbot.waitSignal(panel.worker.finished, timeout=60_000):
        pass
    corrupted = panel.cells["corrupted"].image
    clean = panel.cells["clean"].image
    known = np.isclose(corrupted, clean)
    for key in ("vae", "vae-refined", "diffusion", "classical"):
        assert np.array_equal(panel.cells[key].image[known], clean[known]), key


def test_cancel_stops_the_restoration(qtbot, panel):
    panel.refine_steps.setValue(2000)          # long enough to be cancelled in the middle
    panel.corruption.setCurrentText("blur")
    panel.run_restore()
    qtbot.waitUntil(lambda: panel.cells["vae"].image is not None, timeout=30_000)
    panel.cancel()
    with qtbot.waitSignal(panel.worker.finished, timeout=30_000):
        pass
    assert panel.cells["vae-refined"].image is None and panel.cells["classical"].image is None
    assert panel.status.text() == "cancelled" and panel.run_button.isEnabled()


def test_batch_evaluation_fills_the_table(qtbot, panel, tmp_path):
    panel.corruption.setCurrentText("salt-pepper")
    panel.batch.n_images.setValue(3)
    panel.batch.run()
    # one job at a time: the single-image row waits for the batch
    assert panel.busy() and not panel.run_button.isEnabled() and not panel.batch.run_button.isEnabled()
    with qtbot.waitSignal(panel.batch.worker.finished, timeout=60_000):
        pass
    assert panel.status.text() == "batch evaluation done" and panel.run_button.isEnabled()
    restorers = [panel.batch.table.item(r, 2).text() for r in range(panel.batch.table.rowCount())]
    assert restorers == ["corrupted", "vae", "vae-refined", "diffusion", "classical:median"]
    assert panel.batch.progress.value() == panel.batch.progress.maximum() == 4
    panel.batch.save_table(str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_text().count("\n") == 6


def test_image_file_and_image_selected(qtbot, panel, tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray((np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)).save(path)
    panel.load_image_file(str(path))
    assert panel.clean_image().shape == (1, 16, 16) and panel.source_label.text() == "big.png"
    panel.state.imageSelected.emit("train", 7)
    assert panel.index.value() == 7 and panel._split == "train"
    expected = panel.state.dataset.train.images[7].numpy().astype(np.float32) / 255
    assert np.array_equal(panel.clean_image(), expected)


def test_panel_module_does_not_import_diffusers():
    """The GUI thread never imports diffusers: only the diffusion model (built on a worker) does."""
    import os
    import subprocess
    import sys

    code = ("import sys, explorer.panels.restore, core.restoration.benchmark, core.restoration.learned; "
            "sys.exit(any(m.split('.')[0] == 'diffusers' for m in sys.modules))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
