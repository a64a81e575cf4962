"""The Dataset tab on the bundled digits and VAE: encoded on a worker, filtered by a query, sorted, shared with the
app's selection both ways, exported."""

from __future__ import annotations

import csv

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
    assert panel.export_folder(str(tmp_path / "eights")) == len(shown)
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
