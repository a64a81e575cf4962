"""Live plots: the view follows the data in steps (sticky auto-range), so a live curve does not re-render its axes on
every redraw; everything drawn is still inside the view."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QWidget

from explorer.widgets.live_plot import HEADROOM, PADDING, LivePlot, sticky_range


def test_sticky_range_keeps_a_view_that_still_holds_the_data():
    assert sticky_range((0.0, 100.0), (10.0, 80.0)) == (0.0, 100.0)


def test_sticky_range_grows_with_headroom_on_the_side_the_data_passed():
    lo, hi = sticky_range((0.0, 100.0), (10.0, 120.0))
    span = 110.0
    assert lo == pytest.approx(10.0 - PADDING * span)                 # the other side only gets padding
    assert hi == pytest.approx(120.0 + (PADDING + HEADROOM) * span)   # room to grow before the next re-range


def test_sticky_range_refits_a_view_much_wider_than_the_data():
    # e.g. a new run's first points in a view sized for the previous run
    lo, hi = sticky_range((0.0, 1000.0), (10.0, 20.0))
    assert lo == pytest.approx(10.0 - PADDING * 10) and hi == pytest.approx(20.0 + PADDING * 10)


def test_sticky_range_of_a_single_value_is_a_window_around_it():
    lo, hi = sticky_range((0.0, 1.0), (5.0, 5.0))
    assert lo < 5.0 < hi


@pytest.fixture
def plot(qtbot):
    box = QWidget()    # pyqtgraph's PlotWidget.close() fails when called twice; the fixtures close top-level widgets
    qtbot.addWidget(box)
    p = LivePlot("loss", parent=box)
    p.resize(400, 300)
    box.show()
    p.add_curve("loss", ema=0.2)
    yield p      # (a generator fixture keeps `box`, and with it the plot, alive during the test)


def view(plot: LivePlot) -> tuple[tuple[float, float], tuple[float, float]]:
    plot.getPlotItem().getViewBox().updateAutoRange()
    (x0, x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    return (x0, x1), (y0, y1)


def test_a_growing_curve_re_ranges_a_few_times_and_stays_in_view(plot):
    rng = np.random.default_rng(0)
    ranges = []
    for step in range(1, 2001):
        plot.append("loss", step, 100 * np.exp(-step / 500) + 40 + rng.normal(0, 2))
        if step % 10 == 0:    # the dashboard redraws every few steps
            plot.redraw()
            (x0, x1), (y0, y1) = view(plot)
            s = plot.series["loss"]
            assert x0 <= s.xs.min() and s.xs.max() <= x1
            assert y0 <= s.ys.min() and s.ys.max() <= y1
            ranges.append((x0, x1, y0, y1))
    changes = sum(a != b for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    assert changes < 40, f"the view changed on {changes} of {len(ranges)} redraws"   # was: on every redraw


def test_user_zoom_is_kept_and_auto_range_comes_back_on_request(plot):
    for step in range(1, 101):
        plot.append("loss", step, 1.0 / step)
    plot.redraw()
    view(plot)
    vb = plot.getPlotItem().getViewBox()
    vb.setRange(xRange=(10, 20), padding=0)    # what a mouse zoom does: auto-range off
    for step in range(101, 301):
        plot.append("loss", step, 1.0 / step)
    plot.redraw()
    (x0, x1), _ = view(plot)
    assert (x0, x1) == pytest.approx((10, 20))
    vb.enableAutoRange()                        # the plot's "A" button
    (x0, x1), _ = view(plot)
    assert x0 <= 1 and x1 >= 300
