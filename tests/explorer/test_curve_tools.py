"""The dashboard's curve tools (TensorBoard's): smoothing, x axis, crosshair read-out, a log axis per plot, KL on an
axis of its own, a hint on empty plots. Driven through the dashboard with events as a run sends them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from core.errors import UserError
from core.runs.smoothing import RunningEma, ema_smooth
from core.training.events import EpochSummary, RunEnded, RunStarted, StepMetrics, to_record
from explorer.panels.curve_set import read_baseline
from explorer.panels.dashboard import RunDashboard

START = 1_000_000.0     # the run's start (epoch seconds)


def tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's `classicSmoothing` (tensorboard/webapp/widgets/line_chart_v2/lib/data_transformer.ts),
    transcribed line by line."""
    last, num_accum = (0.0 if values else math.nan), 0
    is_constant = all(v == values[0] for v in values)
    out = []
    for next_val in values:
        if is_constant or not math.isfinite(next_val):
            out.append(next_val)
            continue
        last = last * weight + (1 - weight) * next_val
        num_accum += 1
        debias_weight = 1 - weight ** num_accum if weight != 1 else 1
        out.append(last / debias_weight)
    return out


def test_smoothing_is_tensorboards_debiased_ema():
    # by hand, weight 0.5: 0.5/0.5 = 1; (0.25 + 1)/0.75 = 5/3; (0.625 + 1.5)/0.875 = 17/7
    np.testing.assert_allclose(ema_smooth(np.array([1.0, 2.0, 3.0]), 0.5), [1.0, 5 / 3, 17 / 7])
    series = [5.0, 4.0, math.nan, 3.5, 9.0, math.inf, 2.0, 2.5, 1.0]
    for weight in (0.0, 0.6, 0.9, 0.999):
        got = ema_smooth(np.array(series), weight)
        np.testing.assert_allclose(got, tensorboard_smoothing(series, weight), equal_nan=True)
        running = RunningEma(weight)
        np.testing.assert_allclose([running(v) for v in series], got, equal_nan=True)
    np.testing.assert_array_equal(ema_smooth(np.full(5, 0.1), 0.9), np.full(5, 0.1))   # flat stays exactly flat
    with pytest.raises(ValueError, match="smoothing weight"):
        ema_smooth(np.ones(3), 1.0)


def steps(dash: RunDashboard, n: int = 40, per_epoch: int = 10) -> None:
    """A run's events: step s at START + s/2 seconds, an epoch summary every `per_epoch` steps."""
    dash.show_event(RunStarted(None, {}, {}, "cpu", n, per_epoch, time=START))
    for s in range(1, n + 1):
        dash.show_event(StepMetrics(s, (s - 1) // per_epoch + 1, {"loss": 100 / s + 40 + (s % 3),
                                                                  "recon": 100 / s + 35, "kl": 5 + s / 20},
                                    1e-3, 100.0, 1.0, s / n, time=START + s / 2))
        if s % per_epoch == 0:
            dash.show_event(EpochSummary(s // per_epoch, s, {"loss": 50 - s / 10}, {"loss": 52 - s / 10}, False, 1.0,
                                         time=START + s / 2))
    dash.redraw()


@pytest.fixture
def dash(qtbot):
    d = RunDashboard()
    qtbot.addWidget(d)
    d.resize(1200, 800)
    d.show()
    yield d
    d.finish()


def test_empty_plots_say_what_will_appear_and_the_hint_goes_with_the_first_point(dash):
    dash.redraw()
    assert dash.plots["loss"].hint.isVisible() and "start a run" in dash.plots["loss"].hint.text()
    steps(dash, n=3)
    assert not dash.plots["loss"].hint.isVisible()


def test_the_smoothing_slider_re_smooths_every_curve_and_new_points_continue_it(dash):
    steps(dash, n=20)
    loss = dash.plots["loss"].series["loss"]
    np.testing.assert_allclose(loss.smoothed, ema_smooth(loss.ys, 0.6))      # TensorBoard's default
    dash.curve_controls.slider.setValue(90)
    np.testing.assert_allclose(loss.smoothed, ema_smooth(loss.ys, 0.9))
    steps(dash, n=20)    # a second run of points after the change: the running average goes on from the batch one
    np.testing.assert_allclose(loss.smoothed, ema_smooth(loss.ys, 0.9))
    dash.redraw()
    _, drawn = dash.plots["loss"]._curves["loss"][0].getData()
    _, raw = dash.plots["loss"]._curves["loss"][1].getData()
    np.testing.assert_allclose(drawn, ema_smooth(loss.ys, 0.9))   # smoothed in front, raw behind
    np.testing.assert_allclose(raw, loss.ys)
    dash.curve_controls.slider.setValue(0)
    np.testing.assert_array_equal(loss.smoothed, loss.ys)


def test_x_axis_switch_moves_every_curve_to_epochs_or_wall_time(dash):
    steps(dash, n=40)
    dash.curve_controls.x_box.setCurrentText("epoch")
    dash.redraw()
    xs, _ = dash.plots["loss"]._curves["loss"][0].getData()
    np.testing.assert_array_equal(xs, (np.arange(1, 41) - 1) // 10 + 1)
    assert dash.plots["loss"].getPlotItem().getAxis("bottom").labelText == "epoch"
    dash.curve_controls.x_box.setCurrentText("wall time")
    dash.redraw()
    xs, _ = dash.plots["terms"]._curves["kl"][0].getData()
    np.testing.assert_allclose(xs, np.arange(1, 41) / 2)       # seconds since the run started
    val_x, _ = dash.plots["val"]._curves["val loss"][0].getData()
    np.testing.assert_allclose(val_x, [5, 10, 15, 20])         # validation at its epoch's end
    vb = dash.plots["loss"].getPlotItem().getViewBox()
    vb.updateAutoRange()     # (what the next paint does)
    (x0, x1), _ = vb.viewRange()
    assert x0 <= 0.5 and 20 <= x1 < 25                         # fitted to the new axis, not the steps' 0..40
    dash.curve_controls.x_box.setCurrentText("step")
    dash.redraw()
    val_x, _ = dash.plots["val"]._curves["val loss"][0].getData()
    np.testing.assert_array_equal(val_x, [10, 20, 30, 40])


def test_crosshair_text_names_each_curve_its_smoothed_and_raw_value(dash):
    steps(dash, n=40)
    lines, x = dash.plots["terms"].readout_at(20.4)
    recon = dash.plots["terms"].series["recon"]
    assert x == 20
    assert lines[0] == f"recon @ 20: {recon.smoothed[19]:.4g} (raw {recon.ys[19]:.4g})"
    assert lines[1].startswith("kl @ 20: ")
    dash.curves.set_x_axis("time")
    lines, x = dash.plots["terms"].readout_at(10.1)
    assert x == 10.0 and lines[0].startswith("recon @ 10.0 s: ")


def test_kl_has_its_own_axis_and_each_plot_its_own_log_toggle(dash):
    steps(dash, n=10)
    terms = dash.plots["terms"]
    kl_curve, recon_curve = terms._curves["kl"][0], terms._curves["recon"][0]
    assert kl_curve.getViewBox() is not recon_curve.getViewBox()
    assert terms.getPlotItem().getAxis("right").isVisible()
    legend = [label.text for _, label in terms.getPlotItem().legend.items]
    assert legend == ["recon", "kl"] and "kl" in terms.getPlotItem().getAxis("right").labelString()   # named there
    dash.plots["loss"].log_toggle.click()
    assert dash.plots["loss"].getPlotItem().ctrl.logYCheck.isChecked()
    assert not dash.plots["val"].getPlotItem().ctrl.logYCheck.isChecked()   # the others keep theirs
    terms.log_toggle.click()
    assert kl_curve.opts["logMode"] == [False, True]                        # the right axis follows its plot
    dash.log_scale.setChecked(True)                                         # "Log scale" sets them all
    assert all(dash.plots[k].log_toggle.isChecked() for k in ("loss", "terms", "val"))


def write_run(folder, n: int = 30, per_epoch: int = 10, scale: float = 1.5):
    """A finished run folder as the Trainer writes it (metrics.jsonl records): losses `scale` times the live run's."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"train": {"epochs": n // per_epoch}}))
    events = [RunStarted(str(folder), {}, {}, "cpu", n, per_epoch, time=START - 5000)]
    for s in range(1, n + 1):
        events.append(StepMetrics(s, (s - 1) // per_epoch + 1, {"loss": scale * (100 / s + 40), "recon": 90.0,
                                                                "kl": 4.0}, 1e-3, 100.0, 1.0, s / n,
                                  time=START - 5000 + s))
        if s % per_epoch == 0:
            events.append(EpochSummary(s // per_epoch, s, {"loss": 60.0}, {"loss": 61.0 - s / 10}, s == n, 1.0,
                                       time=START - 5000 + s))
    events.append(RunEnded("completed", "done", n, n // per_epoch, 58.0, time=START - 5000 + n))
    with open(folder / "metrics.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(to_record(ev)) + "\n" for ev in events)
    return folder


def test_a_baseline_overlay_draws_two_runs(dash, qtbot, tmp_path):
    base = write_run(tmp_path / "beta-1.0-run")
    steps(dash, n=20)
    dash.curves.load_baseline(str(base))
    qtbot.waitUntil(lambda: dash.curves.baseline == str(base), timeout=20_000)
    dash.redraw()
    loss = dash.plots["loss"]
    live_x, live_y = loss._curves["loss"][0].getData()
    base_x, base_y = loss._baseline_items["loss"].getData()
    assert len(live_x) == 20 and len(base_x) == 30                      # two runs on one plot
    expected = ema_smooth(1.5 * (100 / np.arange(1, 31) + 40), 0.6)      # smoothed as the live curve is
    np.testing.assert_allclose(base_y, expected)
    assert loss._baseline_items["loss"].opts["pen"].style() == Qt.PenStyle.DashLine
    legend = [label.text for _, label in loss.getPlotItem().legend.items]
    assert legend == ["loss", "loss · beta-1.0-run"]
    kl = dash.plots["terms"]._baseline_items["kl"]
    assert kl.getViewBox() is dash.plots["terms"]._curves["kl"][0].getViewBox()    # on KL's own axis
    val_x, _ = dash.plots["val"]._baseline_items["val loss"].getData()
    np.testing.assert_array_equal(val_x, [1, 2, 3])
    assert dash.curve_controls.baseline_button.text() == "Baseline: beta-1.0-run"
    lines, _ = loss.readout_at(10)
    assert lines[1].startswith("loss · beta-1.0-run @ 10: ")
    dash.curves.set_x_axis("time")                                      # its own start is its time 0
    dash.redraw()
    base_x, _ = loss._baseline_items["loss"].getData()
    np.testing.assert_allclose(base_x, np.arange(30))
    dash.clear()                                                        # a new run keeps the baseline ...
    assert "loss" in loss.baselines
    dash.curve_controls.clear_baseline_button.click()                   # ... until it is removed
    assert not loss.baselines and [label.text for _, label in loss.getPlotItem().legend.items] == ["loss"]


def test_a_folder_that_is_not_a_run_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="is not a run folder") as info:
        read_baseline(str(tmp_path))
    assert "\n" not in str(info.value)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="has no curves yet"):
        read_baseline(str(tmp_path))
