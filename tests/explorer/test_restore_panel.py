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
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
        pass
    for key in ("clean", "corrupted", "vae", "vae-refined", "diffusion", "classical"):
        cell = panel.cells[key]
        assert cell.image is not None and cell.image.shape == (1, 16, 16), key
        assert cell.view.count() == 1
    assert "PSNR" in panel.cells["diffusion"].info.text() and " s" in panel.cells["diffusion"].info.text()
    assert "tv" in panel.cells["classical"].title.text()
    assert panel.status.text() == "done" and panel.run_button.isEnabled()
    before = panel.cells["vae"].view.to_image()
    panel.diff_toggle.setChecked(True)
    assert panel.cells["vae"].view.to_image() != before
    out = tmp_path / "row.png"
    panel.export_png(str(out))
    assert Image.open(out).size[0] > 200


def test_mask_restoration_keeps_known_pixels_in_every_cell(qtbot, panel):
    panel.corruption.setCurrentText("mask-box")
    panel.run_restore()
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
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
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=30_000):
        pass
    assert panel.cells["vae-refined"].image is None and panel.cells["classical"].image is None
    assert panel.status.text() == "cancelled" and panel.run_button.isEnabled()


def test_batch_evaluation_fills_the_table(qtbot, panel, tmp_path):
    panel.corruption.setCurrentText("salt-pepper")
    panel.batch.n_images.setValue(3)
    panel.batch.run()
    # one job at a time: the single-image row waits for the batch
    assert panel.busy() and not panel.run_button.isEnabled() and not panel.batch.run_button.isEnabled()
    with qtbot.waitSignal(panel.batch.tasks.worker("batch").finished, timeout=60_000):
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


# ---- nothing stale: a result on screen matches the settings above it, or says it is out of date ----------------------
RESULT_CELLS = ("corrupted", "vae", "vae-refined", "diffusion", "classical")


def _restore(qtbot, panel) -> None:
    panel.run_restore()
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
        pass


def test_changing_the_corruption_marks_the_shown_results_out_of_date(qtbot, panel, digits):
    from explorer.panels.restore import STALE_TEXT

    panel.corruption.setCurrentText("gaussian")
    _restore(qtbot, panel)
    numbers = panel.cells["vae"].info.text()
    assert "PSNR" in numbers and not panel.results_out_of_date()
    assert "Results for gaussian" in panel.row_header.text()

    panel.corruption.setCurrentText("mask-box")     # the gaussian results are no longer what the header says
    for key in RESULT_CELLS:
        cell = panel.cells[key]
        assert cell.stale and cell.info.text() == STALE_TEXT, key
        assert cell.view.faded, key    # greyed
    assert not panel.cells["clean"].stale
    header = panel.row_header.text()
    assert "Out of date" in header and "corruption" in header and "computed for gaussian" in header

    panel.corruption.setCurrentText("gaussian")     # back to what was computed (strength back to its default)
    assert not panel.results_out_of_date() and panel.cells["vae"].info.text() == numbers

    for change in (lambda: panel.seed.setValue(7), lambda: panel.refine_steps.setValue(4),
                   lambda: panel.diffusion_samples.setValue(2), lambda: panel.strength.setValue(0.5)):
        change()
        assert panel.results_out_of_date()
    _restore(qtbot, panel)
    assert not panel.results_out_of_date() and "seed 7" in panel.row_header.text()

    # a new model (state.vaeChanged) makes the results out of date too, and says which input changed
    panel.state.set_vae(_loaded(VAEConfig(latent_dim=4, width=4, stages=2), digits.meta))
    assert panel.cells["vae"].stale and "VAE changed" in panel.row_header.text()
    panel.state.set_diffusion(panel.state.diffusion)   # the same model again: nothing new about it
    assert "diffusion model" not in panel.row_header.text()

    # a new image clears the row: its results belonged to the old image
    panel.index.setValue(panel.index.value() + 1)
    assert all(panel.cells[k].image is None for k in RESULT_CELLS) and not panel.results_out_of_date()


def test_a_setting_changed_while_restoring_leaves_the_results_out_of_date(qtbot, panel):
    panel.corruption.setCurrentText("blur")
    panel.run_restore()
    panel.seed.setValue(3)
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
        pass
    assert all(panel.cells[k].stale for k in RESULT_CELLS)
    assert "seed changed" in panel.row_header.text() and "seed 0" in panel.row_header.text()


def test_batch_table_is_marked_out_of_date_when_its_settings_change(qtbot, panel):
    panel.corruption.setCurrentText("salt-pepper")
    panel.batch.n_images.setValue(2)
    panel.batch.run()
    with qtbot.waitSignal(panel.batch.tasks.worker("batch").finished, timeout=60_000):
        pass
    assert not panel.batch.stale and "Computed for salt-pepper" in panel.batch.header.text()
    panel.seed.setValue(5)
    assert panel.batch.stale and "seed changed" in panel.batch.header.text()
    assert panel.batch.table.item(0, 4).foreground().color().name() == "#969696"
    panel.seed.setValue(0)
    assert not panel.batch.stale
    panel.batch.n_images.setValue(3)
    assert panel.batch.stale and "images changed" in panel.batch.header.text()
    panel.batch.n_images.setValue(2)
    panel.batch.all_corruptions.setChecked(True)
    assert panel.batch.stale


def test_a_colour_photo_opened_into_a_grey_model_says_what_the_model_sees(qtbot, panel, tmp_path):
    path = tmp_path / "photo.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    panel.load_image_file(str(path))
    assert not panel.conversion.isHidden()
    note = panel.conversion.text()
    assert "converted from 64x48 RGB to 16x16 grey for this model" in note and "centre-cropped" in note
    # the clean reference shown is the converted image the models see and the scores compare against
    clean = panel.cells["clean"]
    assert "converted" in clean.title.text() and clean.image.shape == (1, 16, 16)
    np.testing.assert_array_equal(clean.image, panel.clean_image())
    assert "converted" in clean.info.text()
    panel.corruption.setCurrentText("gaussian")
    _restore(qtbot, panel)
    assert "scores against the converted image" in panel.row_header.text()

    # an image already in the model's form is used as it is, without a notice
    same = tmp_path / "digit.png"
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8), mode="L").save(same)
    panel.load_image_file(str(same))
    assert panel.conversion.isHidden() and "converted" not in panel.cells["clean"].title.text()
    # choosing a dataset image drops the notice too
    panel.load_image_file(str(path))
    panel.index.setValue(3)
    assert panel.conversion.isHidden() and panel.source_label.text() == "test image 3"


def test_an_opened_image_file_is_read_as_a_folder_dataset_reads_it(panel, tmp_path):
    """"Open image" converts as core's folder reader does: 16-bit grey scaled (not clipped to white), EXIF orientation
    applied, transparency on black, and a non-square image centre-cropped (not stretched)."""
    sixteen = tmp_path / "scan.png"
    Image.fromarray(np.full((16, 16), 30_000, np.uint16)).save(sixteen)
    panel.load_image_file(str(sixteen))
    np.testing.assert_allclose(panel.clean_image(), round(30_000 * 255 / 65535) / 255, atol=1 / 255)

    # a wide image: a white square between two black bands; cropped, the bands go and the square fills the image
    wide = np.zeros((32, 64), np.uint8)
    wide[:, 16:48] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    panel.load_image_file(str(tmp_path / "wide.png"))
    img = panel.clean_image()[0]
    assert img[:, 1:-1].min() > 0.95 and img.mean() > 0.95   # stretched, a quarter of each side would be black

    # transparent pixels are black whatever colour they store
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = 255                 # white, but fully transparent ...
    rgba[:8, :, 3] = 255                # ... except the top half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    panel.load_image_file(str(tmp_path / "alpha.png"))
    img = panel.clean_image()[0]
    assert img[:8].min() > 0.95 and img[8:].max() < 0.05

    # EXIF "rotate 90°": the top row of the stored pixels becomes a column, as viewers show it
    stored = np.zeros((16, 16), np.uint8)
    stored[0, :] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                    # orientation: rotate 90° clockwise to display
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    panel.load_image_file(str(tmp_path / "phone.png"))
    img = panel.clean_image()[0]
    assert img[:, -1].min() > 0.95 and img[0, :8].max() < 0.05
