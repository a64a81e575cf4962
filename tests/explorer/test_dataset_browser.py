"""The Dataset tab on the bundled digits and VAE: encoded on a worker, filtered by a query, sorted, shared with the
app's selection both ways, exported."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from core.config import DataConfig
from core.data.datasets import load_dataset
from explorer.panel_view import PanelView
from explorer.panels.dataset_browser import DatasetBrowserPanel
from explorer.selection import ImageSelection
from explorer.state import AppState


@pytest.fixture
def browser(qtbot, bundled_vae):
    state = AppState()
    state.vae = bundled_vae
    state.dataset = load_dataset(DataConfig(name="digits", image_size=bundled_vae.meta.image_size))
    panel = DatasetBrowserPanel(PanelView(state))
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    qtbot.waitUntil(lambda: panel.columns is not None, timeout=60_000)
    yield panel, state
    panel.shutdown()


def test_the_browser_lists_filters_sorts_and_exports_the_digits(browser, qtbot, tmp_path):
    panel, state = browser
    test = state.dataset.test
    assert len(panel.rows) == len(test) and panel.grid.thumbs.rowCount() == len(test)
    np.testing.assert_array_equal(panel.columns.labels, test.labels.numpy())
    made = panel.grid.thumbs.made
    assert 0 < made < 400                       # thumbnails only for the cells painted, not for every image
    cut = float(np.quantile(panel.columns.error, 0.7))
    panel.query.setText(f"class 8 and error > {cut}")
    assert panel.apply()
    expected = np.flatnonzero((panel.columns.labels == 8) & (panel.columns.error > cut))
    assert 0 < len(expected) and np.array_equal(np.sort(panel.rows), expected)
    panel.sort_box.setCurrentText("sort by error")
    panel.descending.setChecked(True)
    assert np.all(np.diff(panel.columns.error[panel.rows]) <= 0)
    assert "of" in panel.status.text() and "ms" in panel.status.text()
    shown = panel.rows.copy()
    panel.query.setText("class 8 and")          # a bad query: one line, the view is kept
    assert not panel.apply()
    assert panel.status.text().startswith("query: ") and np.array_equal(panel.rows, shown)
    panel.export_csv(str(tmp_path / "view.csv"))
    with open(tmp_path / "view.csv") as f:
        assert [int(r["index"]) for r in csv.DictReader(f)] == shown.tolist()
    with qtbot.waitSignal(panel.export_folder(str(tmp_path / "eights")).finished, timeout=30_000):
        pass                                    # written on a worker: 10,000 PNGs took 2.9 s here
    assert len(list((tmp_path / "eights" / "8").glob("test-*.png"))) == len(shown)
    assert panel.status.text() == f"{len(shown):,} of {len(shown):,} images written to {tmp_path / 'eights'}"
    with qtbot.waitSignal(panel.export_folder(str(tmp_path / "eights")).finished, timeout=30_000):
        pass                                    # not an empty folder: one line, nothing written
    assert panel.status.text().startswith("failed: ") and "is not empty" in panel.status.text()
    assert len(list((tmp_path / "eights" / "8").glob("test-*.png"))) == len(shown)


def test_selections_go_both_ways_with_the_app(browser):
    panel, state = browser
    panel.query.setText("kl < 8")
    panel.apply()
    panel.grid.select_images(panel.rows[:5])
    panel.share_selection()
    sel = state.selection
    assert sel.source == "dataset browser" and sel.indices.tolist() == panel.rows[:5].tolist()   # in view order
    assert sel.latents.shape == (5, panel.mu.shape[1]) and sel.dataset is state.dataset
    # the latent map's lasso (another panel) selects its images here
    picked = np.array([int(panel.rows[1]), int(panel.rows[3])])
    state.set_selection(ImageSelection("latent map", ("test", "test"), picked, panel.columns.labels[picked],
                                       panel.mu[picked], description="lasso", dataset=state.dataset))
    assert sorted(panel.grid.selected_images().tolist()) == sorted(picked.tolist())
    assert "lasso: 2 of its images" in panel.status.text()


# ---- saved views ---------------------------------------------------------------------------------------------------
def _bad_eights(panel) -> np.ndarray:
    """A query, a sort order and what they show: the eights with the worst third of reconstruction errors."""
    cut = float(np.quantile(panel.columns.error, 0.66))
    panel.query.setText(f"class 8 and error > {cut:.5f}")
    panel.sort_box.setCurrentText("sort by error")
    panel.descending.setChecked(True)
    assert panel.apply()
    return panel.rows.copy()


def test_a_saved_view_survives_a_restart_and_is_reapplied_renamed_and_deleted(qtbot, tmp_path):
    from test_workspace import launch

    ws = tmp_path / "ws.json"
    first = launch(qtbot, ws)
    panel = first.panels["dataset_browser"]
    first.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.columns is not None, timeout=60_000)
    shown = _bad_eights(panel)
    assert 0 < len(shown) < len(panel.columns)
    assert panel.saved_views.save("bad eights")
    assert panel.status.text().startswith("saved the view 'bad eights'")
    assert panel.saved_views.box.currentText() == "bad eights"
    first.close()

    second = launch(qtbot, ws)
    panel = second.panels["dataset_browser"]
    second.tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: panel.columns is not None, timeout=60_000)
    assert [v.name for v in panel.saved_views.views] == ["bad eights"]
    assert len(panel.rows) == len(panel.columns) and panel.query.text() == ""      # a launch shows every image
    assert panel.saved_views.apply("bad eights")
    np.testing.assert_array_equal(panel.rows, shown)
    assert panel.sort_box.currentText() == "sort by error" and panel.descending.isChecked()
    assert panel.status.text().startswith(f"view 'bad eights': {len(shown):,} of {len(panel.columns):,} test images")
    panel.query.setText("class 8")                 # changed by hand: no longer the view, the status says so
    panel.apply()
    assert "bad eights" not in panel.status.text() and panel.saved_views.current is None
    assert panel.saved_views.rename("bad eights", "worst eights")
    assert panel.saved_views.delete("worst eights")
    assert panel.saved_views.views == [] and panel.saved_views.box.currentText() == "no saved views yet"
    second.close()
    assert json.loads(ws.read_text())["settings"]["dataset_browser.views"] == []


def test_bad_names_and_queries_are_one_line_and_keep_the_saved_views(browser, monkeypatch):
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    panel, state = browser
    _bad_eights(panel)
    assert panel.saved_views.save("bad eights")
    for name, line in (("  ", "a saved view needs a name"),
                       ("Bad  Eights", "a view named 'bad eights' exists already")):
        assert not panel.saved_views.save(name)
        assert panel.status.text().startswith(line) and "\n" not in panel.status.text()
    panel.query.setText("class 8 and")             # not in the query language: never saved
    assert not panel.saved_views.save("broken")
    assert panel.status.text().startswith("view 'broken': query: ")
    assert not panel.saved_views.rename("bad eights", "")
    assert not panel.saved_views.apply("no such view")
    assert [v.name for v in panel.saved_views.views] == ["bad eights"]
    assert [v["name"] for v in state.settings.value("dataset_browser.views", [])] == ["bad eights"]
    # The buttons: Save view... asks a name (offering the query), Edit > Delete... asks before deleting
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (asked.append(k.get("text")), ("typed", True))[1])
    panel.query.setText("kl < 5")
    panel.saved_views.save_button.click()
    assert asked == ["kl < 5 · by error, descending"] and panel.saved_views.current.name == "typed"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    panel.saved_views.edit_button.menu().actions()[1].trigger()
    assert [v.name for v in panel.saved_views.views] == ["bad eights", "typed"]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    panel.saved_views.edit_button.menu().actions()[1].trigger()
    assert [v.name for v in panel.saved_views.views] == ["bad eights"]
    # A workspace from a colleague on CIFAR-10 (edited by hand: one entry is not a view at all)
    state.settings.replace({"dataset_browser.views": [
        {"name": "cats", "class_name": "cat", "dataset": "cifar10", "count": 1000, "total": 10000},
        {"name": 7}]})
    assert [v.name for v in panel.saved_views.views] == ["cats"]
    shown = panel.rows.copy()
    assert not panel.saved_views.apply("cats")
    assert panel.status.text().startswith("view 'cats' keeps class 'cat', which this dataset does not have")
    np.testing.assert_array_equal(panel.rows, shown)


def test_a_view_saved_with_one_model_is_rerun_with_another_and_says_so(browser, qtbot, tmp_path):
    from core.config import Config, VAEConfig
    from core.models import build_model
    from core.training.checkpoint import load_model, save_checkpoint

    panel, state = browser
    kl_cut = float(np.median(panel.columns.kl))
    panel.query.setText(f"kl < {kl_cut:.4f}")
    panel.apply()
    saved_count = len(panel.rows)
    assert panel.saved_views.save("low kl")
    meta = state.vae.meta
    cfg = Config(DataConfig(image_size=meta.image_size), VAEConfig(latent_dim=3, width=8, stages=1))
    untrained = load_model(save_checkpoint(tmp_path / "untrained.safetensors", model=build_model(cfg.model, meta),
                                           config=cfg, meta=meta))
    state.add_model(untrained, source="checkpoint", name="untrained VAE")     # shown at once
    old = panel.columns
    qtbot.waitUntil(lambda: panel.columns is not old, timeout=60_000)
    assert panel.query.text() == f"kl < {kl_cut:.4f}"
    panel.query.setText("")
    panel.apply()
    assert panel.saved_views.apply("low kl")
    expected = np.flatnonzero(panel.columns.kl < float(f"{kl_cut:.4f}"))
    np.testing.assert_array_equal(panel.rows, expected)          # re-run on the data shown now
    status = panel.status.text()
    assert status.startswith(f"view 'low kl' (saved on digits · digits-vae.safetensors · test: {saved_count:,} of "
                             f"{len(old):,} images) re-run on digits · untrained VAE: {len(expected):,} of ")
    assert saved_count != len(expected)


def test_only_the_selection_shows_a_selection_of_any_size(browser, qtbot):
    panel, state = browser
    test_columns = panel.columns
    panel.split_box.setCurrentText("train")
    qtbot.waitUntil(lambda: panel.columns is not test_columns, timeout=60_000)
    picked = np.flatnonzero(panel.columns.labels != 1)            # far more than the map's 400-image grid shows
    assert len(picked) > 1000
    state.set_selection(ImageSelection("latent map", ("train",) * len(picked), picked, panel.columns.labels[picked],
                                       panel.mu[picked], description="lasso", dataset=state.dataset))
    assert panel.only_selection.text() == f"only the selection ({len(picked):,})"
    panel.only_selection.setChecked(True)
    np.testing.assert_array_equal(panel.rows, picked)
    panel.query.setText("class 3 or class 1")
    panel.apply()
    np.testing.assert_array_equal(panel.rows, picked[panel.columns.labels[picked] == 3])
    assert "in the selection" in panel.status.text()
    state.set_selection(None)
    assert len(panel.rows) == 0 and panel.only_selection.text() == "only the selection (0)"


def test_70000_images_list_filter_and_scroll_with_thumbnails_only_for_what_is_shown(browser, qtbot):
    """MNIST's size: the encoded digits test split repeated to 70,000 images (the frame times are in
    bench/bench_dataset_browser.py)."""
    panel, state = browser
    n, small = 70_000, panel.columns
    tile = np.arange(n) % len(small)
    images = np.ascontiguousarray(state.dataset.test.images.numpy()[tile])
    columns = type(small)(small.labels[tile], small.error[tile], small.kl[tile])
    made = panel.grid.thumbs.made
    panel.set_data("train", images, columns, panel.class_names)
    qtbot.wait(50)
    assert len(panel.rows) == n and panel.grid.thumbs.made - made < 400
    cut = float(np.quantile(small.error, 0.66))
    panel.query.setText(f"class 8 and error > {cut}")
    panel.sort_box.setCurrentText("sort by error")
    assert panel.apply()
    expected = np.flatnonzero((columns.labels == 8) & (columns.error > cut))
    assert len(expected) > 1000 and np.array_equal(np.sort(panel.rows), expected)
    assert np.all(np.diff(columns.error[panel.rows]) >= 0)
    panel.query.setText("")
    panel.sort_box.setCurrentText("sort by index")
    panel.apply()
    last = panel.grid.thumbs.index(n - 1)
    qtbot.waitUntil(lambda: panel.grid.visualRect(last).isValid(), timeout=10_000)   # laid out in batches of 5,000
    panel.grid.scrollToBottom()
    panel.grid.viewport().repaint()
    assert panel.grid.visualRect(last).intersects(panel.grid.viewport().rect())
    assert panel.grid.thumbs._cache.get(n - 1) is not None          # the last image's thumbnail, made when shown
    assert panel.grid.thumbs.made - made < 1200


def test_a_view_of_another_split_lists_that_split_then_reruns(browser, qtbot):
    panel, state = browser
    panel.class_box.setCurrentText("3")
    panel.sort_box.setCurrentText("sort by kl")
    assert panel.saved_views.save("threes")
    test_columns = panel.columns
    panel.split_box.setCurrentText("val")
    qtbot.waitUntil(lambda: panel.columns is not test_columns, timeout=60_000)
    assert len(panel.columns) == len(state.dataset.val) and panel.class_box.currentText() == "3"   # kept
    assert np.all(panel.columns.labels[panel.rows] == 3) and "threes" not in panel.status.text()
    val_columns = panel.columns
    assert panel.saved_views.apply("threes")
    qtbot.waitUntil(lambda: panel.columns is not val_columns, timeout=60_000)
    assert panel.split_name == "test" and panel.split_box.currentText() == "test"
    threes = np.flatnonzero(panel.columns.labels == 3)
    np.testing.assert_array_equal(panel.rows, threes[np.argsort(panel.columns.kl[threes], kind="stable")])
    assert panel.status.text().startswith(f"view 'threes': {len(threes)} of {len(state.dataset.test)} test images")
