"""Denoise / Enhance image viewing (issue 23): the columns zoom, pan and point together; the original file beside its
conversion, lined up; an image file dropped onto the tab is read as Open image reads it; bad drops are one line; and a
note says when the image is unlike the training data (the bundled digits VAE: noise gets it, a held-out digit not)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from core.config import Config, DataConfig, VAEConfig
from core.models import build_model
from core.training.checkpoint import LoadedModel
from explorer.panels.restore import RestorePanel
from explorer.panels.restore_source import read_image_file
from explorer.state import AppState

COLUMNS = ("clean", "corrupted", "vae", "vae-refined", "classical")


@pytest.fixture(scope="module")
def digits():
    from core.data.datasets import load_dataset

    return load_dataset(DataConfig(name="digits", image_size=16))


@pytest.fixture
def panel(qtbot, digits):
    """A tiny untrained VAE (no diffusion model: the row's diffusion cell stays empty)."""
    state = AppState()
    state.set_dataset(digits)
    torch.manual_seed(0)
    cfg = VAEConfig(latent_dim=4, width=4, stages=2)
    state.set_vae(LoadedModel(build_model(cfg, digits.meta).eval(), Config(DataConfig(), cfg), digits.meta, None, 0,
                              0, {}))
    p = RestorePanel(state)
    qtbot.addWidget(p)
    p.refine_steps.setValue(3)
    p.resize(1200, 800)
    p.show()
    yield p
    p.shutdown()


@pytest.fixture
def trained_panel(qtbot, digits, bundled_vae):
    """The bundled VAE, trained on these digits: its domain is theirs."""
    state = AppState()
    state.set_dataset(digits)
    state.set_vae(bundled_vae)
    p = RestorePanel(state)
    qtbot.addWidget(p)
    p.show()
    yield p
    p.shutdown()


def _restore(qtbot, panel) -> None:
    panel.run_restore()
    with qtbot.waitSignal(panel.tasks.worker("row").finished, timeout=60_000):
        pass


def _ranges(panel) -> dict[str, list[list[float]]]:
    return {k: panel.cells[k].view.box.viewRange() for k in COLUMNS}


CLOSE = 0.15    # pixels: columns a pixel narrower than their neighbours show a sliver less (square pixels kept)


def test_zooming_or_panning_one_column_moves_every_column(qtbot, panel):
    panel.corruption.setCurrentText("gaussian")
    _restore(qtbot, panel)
    before = _ranges(panel)
    assert all(np.allclose(r, before["clean"], atol=CLOSE) for r in before.values())
    (x0, x1), (y0, y1) = before["clean"]
    assert x0 <= 0 and x1 >= 16 and y0 <= 0 and y1 >= 16          # fitted: the whole 16x16 image

    # the wheel over the VAE's column zooms in there; every other column shows the same region
    view = panel.cells["vae"].view
    centre = view.viewport().rect().center()
    wheel = QWheelEvent(QPointF(centre), QPointF(view.viewport().mapToGlobal(centre)), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    zoomed = _ranges(panel)
    width = zoomed["vae"][0][1] - zoomed["vae"][0][0]
    assert width < 0.9 * (x1 - x0)
    for key in COLUMNS:
        np.testing.assert_allclose(zoomed[key], zoomed["vae"], atol=CLOSE, err_msg=key)

    # panning the clean column pans the others
    panel.cells["clean"].view.box.translateBy(x=3, y=2)
    panned = _ranges(panel)
    np.testing.assert_allclose(panned["classical"][0], np.add(zoomed["classical"][0], 3), atol=CLOSE)
    np.testing.assert_allclose(panned["corrupted"][1], np.add(zoomed["corrupted"][1], 2), atol=CLOSE)

    # Fit shows the whole image again, in every column
    panel.controls.fit_button.click()
    np.testing.assert_allclose(_ranges(panel)["vae-refined"], before["vae-refined"], atol=CLOSE)


def test_the_crosshair_points_at_one_pixel_in_every_column(qtbot, panel):
    panel.corruption.setCurrentText("gaussian")
    _restore(qtbot, panel)
    panel.cells["corrupted"].view.hovered.emit(5.5, 7.25)      # the pointer over pixel (5, 7) of one column
    for key in COLUMNS:
        vertical, horizontal = panel.cells[key].view.lines
        assert vertical.isVisible() and vertical.value() == 5.5 and horizontal.value() == 7.25, key
    text = panel.row.readout.text()
    assert text.startswith("pixel x 5, y 7:")
    for key in ("clean", "corrupted", "vae"):
        value = panel.cells[key].image[0, 7, 5]
        assert f"{panel.cells[key].name} {value:.2f}" in text, key
    panel.cells["corrupted"].view.hovered.emit(float("nan"), float("nan"))    # the pointer left
    assert not panel.cells["vae"].view.lines[0].isVisible() and "wheel: zoom" in panel.row.readout.text()


def test_the_original_file_is_shown_beside_its_conversion_and_lines_up(panel, tmp_path):
    # 64x32: a grey band (50) | the centre square (200) | a lighter band (100); the models see the centre square
    wide = np.full((32, 64), 200, np.uint8)
    wide[:, :16], wide[:, 48:] = 50, 100
    Image.fromarray(wide).save(tmp_path / "wide.png")
    panel.load_image_file(str(tmp_path / "wide.png"))
    original = panel.row.original
    assert not original.isHidden() and "64x32" in original.title.text()
    assert panel.cells["clean"].image[..., 1:-1].min() > 0.75    # the conversion: the centre square only
    # one place, read in both: inside the square the same value; beyond its edges, only the original has pixels
    view = original.view
    assert float(view.value_at(8, 8)[0]) == pytest.approx(200 / 255, abs=1 / 255)
    assert float(view.value_at(-4, 8)[0]) == pytest.approx(50 / 255, abs=1 / 255)     # 8 file pixels left of it
    assert float(view.value_at(20, 8)[0]) == pytest.approx(100 / 255, abs=1 / 255)
    assert panel.cells["clean"].view.value_at(-4, 8) is None
    assert view.value_at(8, -12) is None                    # above the file: nothing
    # a dataset image has no original file
    panel.index.setValue(2)
    assert original.isHidden()


def _drag_events(paths: list[str], text: str = "") -> tuple[QDragEnterEvent, QDropEvent]:
    mime = QMimeData()
    if paths:
        mime.setUrls([QUrl.fromLocalFile(p) for p in paths])
    if text:
        mime.setText(text)
    pos = QPoint(100, 100)
    action = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(pos, action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    drop = QDropEvent(QPointF(pos), action, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter.mime, drop.mime = mime, mime     # keep the data alive as long as the events
    return enter, drop


def _drop(panel, paths: list[str], text: str = "") -> tuple[bool, bool]:
    enter, drop = _drag_events(paths, text)
    QApplication.sendEvent(panel, enter)
    accepted = enter.isAccepted()
    if accepted:
        QApplication.sendEvent(panel, drop)
    return accepted, drop.isAccepted()


def _error_dialogs() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if w.objectName() == "errorDialog" and w.isVisible()]


def test_a_dropped_png_is_loaded_like_open_image(qtbot, panel, digits, tmp_path):
    digit = digits.test.images[11, 0].numpy()
    photo = np.stack([np.kron(digit, np.ones((3, 2), np.uint8))] * 3, -1)      # a 32x48 RGB version of a digit
    path = tmp_path / "dropped.png"
    Image.fromarray(photo).save(path)
    assert _drop(panel, [str(path)]) == (True, True)
    expected = read_image_file(str(path), 1, 16).image          # what "Open image" gives
    np.testing.assert_array_equal(panel.clean_image(), expected)
    assert panel.source_label.text() == "dropped.png" and not panel.conversion.isHidden()
    assert "converted from 32x48 RGB to 16x16 grey" in panel.conversion.text()
    np.testing.assert_array_equal(panel.cells["clean"].image, expected)
    assert not panel.row.original.isHidden() and panel.row.original.view.values.shape == (48, 48, 3)
    assert not _error_dialogs()

    # a drag without a file (text from a browser) is refused before the drop
    assert _drop(panel, [], text="just some text")[0] is False

    # a corrupt file and a file that is not an image: one line each, the dropped image stays
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "notes.txt").write_text("not an image")
    for name in ("broken.png", "notes.txt"):
        assert _drop(panel, [str(tmp_path / name)]) == (True, True)
        dialogs = _error_dialogs()
        assert len(dialogs) == 1, name
        message = dialogs[0].text()
        assert message.startswith(f"could not read {name} as an image") and "\n" not in message, message
        assert dialogs[0].detailedText() == "" and "Traceback" not in message
        assert panel.status.text() == message
        dialogs[0].close()
        qtbot.waitUntil(lambda: not _error_dialogs())
        assert panel.source_label.text() == "dropped.png"
        np.testing.assert_array_equal(panel.clean_image(), expected)


def _wait_for_domain(qtbot, panel) -> str:
    qtbot.waitUntil(lambda: not panel.domain.busy(), timeout=60_000)
    note = panel.controls.domain_note
    assert note.isHidden() == (note.text() == "")
    return note.text()


def test_random_noise_gets_the_domain_note_and_a_held_out_digit_does_not(qtbot, trained_panel, digits, tmp_path):
    panel = trained_panel
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8), "L").save(tmp_path / "noise.png")
    panel.load_image_file(str(tmp_path / "noise.png"))
    note = _wait_for_domain(qtbot, panel)
    reference = panel.domain.reference
    assert reference is not None and reference.dataset == "digits" and 0 < reference.low < reference.high < 0.05
    assert panel.domain.error > 3 * reference.high
    assert note.startswith("this image is unlike the training data (reconstruction error ")
    assert f"digits range {reference.low:.2g}–{reference.high:.2g}" in note and "scores may not mean much" in note

    # a held-out digit (test split, never trained on), opened as a file: no note; the range is not computed again
    Image.fromarray(digits.test.images[0, 0].numpy(), "L").save(tmp_path / "digit.png")
    panel.load_image_file(str(tmp_path / "digit.png"))
    assert _wait_for_domain(qtbot, panel) == ""
    assert reference.low <= panel.domain.error <= reference.high and panel.domain.reference is reference
    # ... and chosen in the dataset
    panel.index.setValue(3)
    assert _wait_for_domain(qtbot, panel) == "" and panel.domain.error is not None

    # while the tab is hidden nothing is computed; shown again, the image is checked
    panel.hide()
    panel.load_image_file(str(tmp_path / "noise.png"))
    assert not panel.domain.busy() and panel.domain.error is None
    panel.show()
    assert _wait_for_domain(qtbot, panel) == note

