"""The training dashboard driven like a user would: tiny real trainings on the bundled digits, offscreen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

import core.training.trainer
from core.training.events import EpochSummary, LogMessage, RunEnded, RunStarted, StepMetrics, to_record
from explorer.panels.dashboard import format_stamp
from explorer.panels.train import TrainPanel
from explorer.state import AppState

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(os.environ["VAE_EXPLORER_TEST_SHOTS"])  # under the session's test home (tests/conftest.py)


def tiny(panel: TrainPanel, *, epochs: int = 2, max_steps: int = 0) -> None:
    """A model that trains in about a second per epoch on the shared CPUs."""
    panel.apply_preset("digits")
    panel.data_form.set_field("image_size", 8)
    panel.vae_form.set_field("width", 8)
    panel.vae_form.set_field("latent_dim", 4)
    panel.vae_form.set_field("stages", 1)
    panel.train_form.set_field("epochs", epochs)
    panel.train_form.set_field("max_steps", max_steps)
    panel.train_form.set_field("batch_size", 128)
    panel.train_form.set_field("log_every", 2)
    assert panel.validate() == ""


@pytest.fixture
def panel(qtbot):
    state = AppState()
    p = TrainPanel(state)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    yield p
    p.shutdown()


def error_boxes() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def test_tiny_training_fills_plots_with_the_points_the_events_carried(panel, qtbot):
    tiny(panel, epochs=2)
    assert panel.start_training()
    steps, epochs = [], []
    panel.worker.event.connect(lambda ev: steps.append(ev) if isinstance(ev, StepMetrics) else
                               epochs.append(ev) if isinstance(ev, EpochSummary) else None)
    models = []
    panel.state.vaeChanged.connect(lambda: models.append(panel.state.vae))
    with qtbot.waitSignal(panel.runFinished, timeout=120_000) as blocker:
        pass
    assert blocker.args == ["completed"]
    assert [e.epoch for e in epochs] == [1, 2]
    loss = panel.dashboard.plots["loss"].series["loss"]
    np.testing.assert_array_equal(loss.xs, [e.step for e in steps])
    np.testing.assert_allclose(loss.ys, [e.metrics["loss"] for e in steps])
    np.testing.assert_allclose(panel.dashboard.plots["terms"].series["kl"].ys, [e.metrics["kl"] for e in steps])
    np.testing.assert_allclose(panel.dashboard.plots["lr"].series["lr"].ys, [e.lr for e in steps])
    np.testing.assert_allclose(panel.dashboard.plots["val"].series["val loss"].ys, [e.val["loss"] for e in epochs])
    np.testing.assert_allclose(panel.dashboard.kl_bars.heights, epochs[-1].kl_per_dim)
    assert panel.dashboard.samples_grid.count() > 0 and panel.dashboard.recon_grid.count() > 0
    # The other panels got the model being trained, rebuilt from the snapshots: while the dashboard is on screen,
    # once, at the end (handing them each epoch's model would make them recompute while nobody looks at them).
    assert len(models) == 1 and models[0].model.latent_dim == 4 and models[0].epoch == 2
    assert panel.last_checkpoint and Path(panel.last_checkpoint).is_file()
    assert panel.mode == "idle" and panel.train_button.isEnabled()
    assert not panel.dashboard._redraw_timer.isActive()   # idle: no redraw ticks
    assert "epoch 2" in panel.dashboard.log_view.toPlainText()
    # The bar ends full even when the last logged step was before the run's last step.
    assert panel.dashboard.progress.value() == panel.dashboard.progress.maximum()
    assert panel.dashboard.progress_label.text().startswith("completed at epoch 2")


def test_snapshots_reach_the_other_panels_when_they_are_looked_at(panel, qtbot):
    tiny(panel, epochs=500)
    models = []
    panel.state.vaeChanged.connect(lambda: models.append(panel.state.vae))
    panel.start_training()
    qtbot.waitUntil(lambda: getattr(panel, "_pending_model", None) is not None, timeout=120_000)
    assert models == []          # the dashboard is on screen: held back
    panel.hide()                 # the user switches to another panel
    assert len(models) == 1 and models[0].epoch >= 1
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.stop()


def test_pause_resume_stop(panel, qtbot):
    tiny(panel, epochs=500)
    panel.start_training()
    def n_steps():
        return panel.dashboard.plots["loss"].series["loss"].n

    header = panel.dashboard.progress_label
    qtbot.waitUntil(lambda: n_steps() >= 2 and "img/s" in header.text(), timeout=120_000)
    assert "ETA" in header.text()
    panel.toggle_pause()
    assert panel.paused and panel.job.trainer.paused
    # Let what was in flight land (an epoch end: validation, checkpoint, preview can take a while on a busy
    # machine), then nothing more may arrive while paused.
    frozen, deadline = -1, time.monotonic() + 30
    while n_steps() != frozen and time.monotonic() < deadline:
        frozen = n_steps()
        qtbot.wait(600)
    qtbot.wait(600)
    assert n_steps() == frozen   # nothing trains while paused
    # The header says so, and no longer shows the speed and ETA of before the pause (nor of steps that were in flight).
    assert header.text().startswith("paused · epoch "), header.text()
    assert "img/s" not in header.text() and "ETA" not in header.text()
    panel.toggle_pause()
    assert not panel.paused
    qtbot.waitUntil(lambda: n_steps() > frozen, timeout=60_000)
    qtbot.waitUntil(lambda: "img/s" in header.text() and "ETA" in header.text(), timeout=60_000)   # live again
    assert "paused" not in header.text()
    with qtbot.waitSignal(panel.runFinished, timeout=60_000) as blocker:
        panel.stop()
    assert blocker.args == ["stopped"]
    assert Path(panel.last_checkpoint).is_file()
    assert panel.mode == "idle"


def test_stop_while_paused_ends_the_run(panel, qtbot):
    tiny(panel, epochs=500)
    panel.start_training()
    qtbot.waitUntil(lambda: panel.dashboard.plots["loss"].series["loss"].n >= 1, timeout=120_000)
    panel.toggle_pause()
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.stop()


@pytest.mark.parametrize("field,text,needle", [("lr", "-1", "lr"), ("lr", "fast", "lr"),
                                               ("beta", "1000", "beta")])
def test_invalid_input_blocks_train_with_a_message(panel, field, text, needle):
    form = panel.train_form if field == "lr" else panel.vae_form
    form.editors[field].setText(text)
    assert not panel.train_button.isEnabled()
    assert needle in panel.error_label.text() and panel.error_label.isVisible()
    assert field in form.invalid_fields()
    assert "background-color" in form.editors[field].styleSheet()   # marked in the form
    assert panel.start_training() is False and panel.worker is None
    form.editors[field].setText("0.5")
    assert panel.train_button.isEnabled() and not form.invalid_fields() and panel.error_label.text() == ""


def test_missing_image_folder_is_marked(panel, tmp_path):
    panel.data_form.set_field("name", f"folder:{tmp_path / 'nope'}")
    assert not panel.train_button.isEnabled()
    assert "does not exist" in panel.error_label.text()
    assert "name" in panel.data_form.invalid_fields()


def test_presets_and_model_kind_switch_the_form(panel):
    panel.apply_preset("digits-diffusion")
    assert panel.kind_combo.currentText() == "diffusion"
    assert panel.model_stack.currentWidget() is panel.diffusion_form
    assert panel.config().model.kind == "diffusion"
    panel.apply_preset("cifar10")
    assert panel.config().data.name == "cifar10" and panel.config().model.latent_dim == 128


def test_worker_exception_reaches_a_dialog_and_the_panel_survives(panel, qtbot, monkeypatch):
    class Exploding:
        def __init__(self, *a, **kw):
            pass

        def run(self):
            yield LogMessage("info", "about to fail")
            raise RuntimeError("the GPU caught fire")

        stop = pause = resume = lambda self: None

    monkeypatch.setattr(core.training.trainer, "Trainer", Exploding)
    tiny(panel)
    with qtbot.waitSignal(panel.runFinished, timeout=30_000):
        panel.start_training()
    boxes = error_boxes()
    assert len(boxes) == 1
    assert "RuntimeError: the GPU caught fire" in boxes[0].text()
    assert "Traceback" in boxes[0].detailedText()
    boxes[0].close()
    assert panel.mode == "idle" and panel.train_button.isEnabled()
    assert "about to fail" in panel.dashboard.log_view.toPlainText()


def test_bad_resume_file_is_a_user_error_without_traceback(panel, qtbot, tmp_path):
    bogus = tmp_path / "nothing.safetensors"
    with qtbot.waitSignal(panel.runFinished, timeout=60_000):
        panel.start_training(resume=str(bogus))
    (box,) = error_boxes()
    assert "nothing.safetensors" in box.text() and box.detailedText() == ""
    box.close()


def _write(path: Path, events) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for ev in events:
            f.write(json.dumps(to_record(ev)) + "\n")


def test_follow_run_folder_picks_up_appended_lines(panel, qtbot, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = run / "metrics.jsonl"
    cfg = {"train": {"epochs": 3}}
    meta = {"class_names": [str(i) for i in range(10)]}
    _write(log, [RunStarted(str(run), cfg, meta, "cpu", 30, 10),
                 StepMetrics(5, 1, {"loss": 100.0, "recon": 90.0, "kl": 10.0}, 1e-3, 500.0, 3.0, 5 / 30)])
    panel.follow_run(str(run))
    dash = panel.dashboard
    assert panel.mode == "follow" and dash.banner.isVisible() and str(run) in dash.banner_label.text()
    assert not panel.train_button.isEnabled() and not panel.forms.isEnabled() and not panel.pause_button.isEnabled()
    loss = panel.dashboard.plots["loss"].series["loss"]
    qtbot.waitUntil(lambda: loss.n == 1, timeout=20_000)
    # Another writer appends, including a half-written line that is completed later.
    _write(log, [StepMetrics(10, 1, {"loss": 80.0, "recon": 75.0, "kl": 5.0}, 1e-3, 500.0, 2.0, 10 / 30),
                 EpochSummary(1, 10, {"loss": 85.0}, {"loss": 82.0}, True, 1.0, np.ones(4, np.float32))])
    qtbot.waitUntil(lambda: loss.n == 2 and panel.dashboard.plots["val"].series["val loss"].n == 1, timeout=20_000)
    end = json.dumps(to_record(RunEnded("completed", "done", 10, 1, 82.0)))
    with open(log, "a") as f:
        f.write(end[:20])
        f.flush()
        time.sleep(0.6)
        f.write(end[20:] + "\n")
    with qtbot.waitSignal(panel.runFinished, timeout=20_000) as blocker:
        pass
    assert blocker.args == ["completed"]
    np.testing.assert_allclose(loss.ys, [100.0, 80.0])
    np.testing.assert_allclose(panel.dashboard.kl_bars.heights, np.ones(4))
    assert panel.mode == "idle" and not panel.dashboard.banner.isVisible()


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


@pytest.mark.slow   # a real UMAP / a training: `make test-fast` leaves it out
def test_following_a_cli_run_shows_its_settings_its_log_times_and_only_stop_following(panel, qtbot, tmp_path):
    """A run another process writes (`python -m core.cli train`): the greyed form shows that run's settings, each
    past log line has the time its record was written, and only "Stop following" is offered; stopping following
    leaves the run going and gives the user their own settings back."""
    tiny(panel)
    panel.train_form.set_field("lr", "0.002")
    mine = panel.config()
    run_dir, log = tmp_path / "cli-run", tmp_path / "cli-run" / "metrics.jsonl"
    env = dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", "--epochs", "500", "--per-class", "20",
                             "--batch-size", "32", "--image-size", "12", "--lr", "0.0007", "--threads", "1",
                             "--set", "model.width=8", "--set", "model.latent_dim=3", "--set", "model.stages=1",
                             "--set", "train.log_every=2", "--out", str(run_dir), "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (log.is_file() and
                                                   sum(r["type"] == "epoch" for r in _records(log)) >= 2):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        time.sleep(2.0)   # the folder is opened well after its first records were written
        opened = time.time()
        panel.follow_run(str(run_dir))
        run_config = core_config_of(run_dir)
        # (a) The run's own settings, read-only; (b) nothing that would act on a run this app does not own.
        assert panel.config() == run_config and panel.config() != mine
        assert panel.vae_form.value().latent_dim == 3 and panel.train_form.value().lr == 0.0007
        assert not panel.forms.isEnabled() and not panel.error_label.isVisible()
        assert not panel.run_buttons.isVisible()
        for button in (panel.train_button, panel.pause_button, panel.stop_button, panel.resume_button):
            assert not button.isVisible() and not button.isEnabled(), button.text()
        assert panel.dashboard.banner.isVisible()
        # (c) Each past line at its record's time, not at the time the folder was opened.
        log_view = panel.dashboard.log_view
        qtbot.waitUntil(lambda: "epoch 2 (" in log_view.toPlainText(), timeout=60_000)
        records = _records(log)
        assert all(isinstance(r.get("time"), float) for r in records)
        assert records[0]["type"] == "start" and records[0]["time"] < opened - 2.0
        lines = log_view.toPlainText().splitlines()
        started = next(line for line in lines if "run started on" in line)
        assert started.startswith(format_stamp(records[0]["time"]) + "  "), (started, records[0])
        for epoch in (1, 2):
            record = next(r for r in records if r["type"] == "epoch" and r["epoch"] == epoch)
            line = next(line for line in lines if line.split("  ", 1)[1].startswith(f"epoch {epoch} ("))
            assert line.startswith(format_stamp(record["time"]) + "  "), (line, record)
        assert started.split("  ")[0] != format_stamp(opened)
        # Stop following: the CLI run goes on, and the form is the user's again.
        with qtbot.waitSignal(panel.runFinished, timeout=30_000):
            panel.dashboard.stopFollowing.emit()
        n = len(_records(log))
        qtbot.waitUntil(lambda: len(_records(log)) > n, timeout=60_000)
        assert proc.poll() is None, "stopping following must not stop the run"
        assert panel.mode == "idle" and panel.config() == mine and panel.preset_combo.currentText() == "digits"
        assert panel.run_buttons.isVisible() and panel.train_button.isEnabled() and panel.forms.isEnabled()
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def core_config_of(run_dir: Path):
    from core.config import Config

    return Config.from_file(run_dir / "config.json")


def test_an_older_run_folder_without_record_times_is_stamped_when_read(panel, qtbot, tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [to_record(RunStarted(str(tmp_path), {}, {}, "cpu", 10, 5)),
               to_record(RunEnded("completed", "ok", 10, 2))]
    for r in records:
        del r["time"]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    with qtbot.waitSignal(panel.runFinished, timeout=20_000) as blocker:
        panel.follow_run(str(tmp_path))
    assert blocker.args == ["completed"]
    text = panel.dashboard.log_view.toPlainText()
    assert "run started on cpu" in text and "run completed" in text


def test_follow_can_be_stopped_before_the_run_ends(panel, qtbot, tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    panel.follow_run(str(tmp_path))
    with qtbot.waitSignal(panel.runFinished, timeout=20_000):
        panel.stop()
    assert panel.mode == "idle"


@pytest.mark.slow   # a real UMAP / a training: `make test-fast` leaves it out
def test_screenshots_while_training(qtbot):
    """Window screenshots in the light and the dark look, mid-training (look at them: $VAE_EXPLORER_TEST_SHOTS)."""
    from explorer.main_window import MainWindow

    OUT.mkdir(parents=True, exist_ok=True)
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    panel = win.train_panel
    tiny(panel, epochs=3)
    with qtbot.waitSignal(panel.runFinished, timeout=120_000):
        panel.start_training()
        qtbot.waitUntil(lambda: panel.dashboard.plots["val"].series["val loss"].n >= 2, timeout=120_000)
        panel.dashboard.redraw()
        qtbot.wait(100)   # let the axes re-layout their tick labels
        assert win.grab().save(str(OUT / "train-light.png"))
        win.set_theme("dark")
        qtbot.wait(50)
        panel.dashboard.redraw()
        qtbot.wait(100)   # let the axes re-layout their tick labels
        assert win.grab().save(str(OUT / "train-dark.png"))
    win.set_theme("light")
    assert (OUT / "train-light.png").stat().st_size > 10_000


def test_hover_readout_and_log_scale(panel):
    for step, value in ((10, 5.0), (20, 4.0), (30, 3.0)):
        panel.handle_event(StepMetrics(step, 1, {"loss": value, "recon": value - 1, "kl": 1.0}, 1e-3, 100.0, 1.0, 0.5))
    panel.dashboard.redraw()
    lines, x = panel.dashboard.plots["terms"].readout_at(21.0)
    assert x == 20 and len(lines) == 2 and lines[0].startswith("recon @ 20")
    panel.dashboard.log_scale.setChecked(True)
    assert panel.dashboard.plots["loss"].getPlotItem().ctrl.logYCheck.isChecked()
    panel.dashboard.log_scale.setChecked(False)
    assert not panel.dashboard.plots["loss"].getPlotItem().ctrl.logYCheck.isChecked()
    # The redraw pushed the buffers to the curves: what is drawn is what the events carried (smoothed).
    xs, _ = panel.dashboard.plots["loss"]._curves["loss"][0].getData()
    np.testing.assert_array_equal(xs, [10, 20, 30])


def test_resume_from_checkpoint_continues_the_run(panel, qtbot):
    tiny(panel, epochs=1)
    with qtbot.waitSignal(panel.runFinished, timeout=120_000):
        panel.start_training()
    ckpt = panel.last_checkpoint
    steps_first = panel.dashboard.plots["loss"].series["loss"].xs.max()
    panel.train_form.set_field("epochs", 2)
    with qtbot.waitSignal(panel.runFinished, timeout=120_000) as blocker:
        assert panel.start_training(resume=ckpt)
    assert blocker.args == ["completed"]
    assert "resumed at step" in panel.dashboard.log_view.toPlainText()
    assert panel.dashboard.plots["loss"].series["loss"].xs.min() > steps_first   # only the new steps were plotted
    assert panel.dashboard.plots["val"].series["val loss"].xs.tolist() == [2]


def test_events_schedule_redraws_one_plot_a_tick_and_an_idle_dashboard_has_no_timer_running(panel, qtbot):
    """Each tick of the redraw timer draws one waiting plot (Qt paints every plot updated in one pass together, which
    stalled the event loop while training held the GIL), keeps ticking while plots wait, and stops when none does."""
    dash = panel.dashboard
    panel.show()
    qtbot.waitUntil(lambda: not dash._redraw_timer.isActive(), timeout=5_000)
    assert not dash._redraw_timer.isActive()
    for step in (10, 20, 30):
        panel.handle_event(StepMetrics(step, 1, {"loss": 1.0 / step, "recon": 0.5, "kl": 0.1}, 1e-3, 100.0, 1.0, 0.5))
    assert dash._redraw_timer.isActive()

    def drawn() -> dict[str, int]:
        counts = {}
        for key, name in (("loss", "loss"), ("terms", "recon"), ("lr", "lr")):
            curves = dash.plots[key]._curves
            xs = curves[name][0].getData()[0] if name in curves else None
            counts[key] = 0 if xs is None else len(xs)
        return counts

    dash._redraw_timer.stop()
    dash._redraw_tick()             # one tick: one of the three waiting plots drawn, the timer on for the others
    assert sorted(drawn().values()) == [0, 0, 3], drawn()
    assert dash._redraw_timer.isActive()
    qtbot.waitUntil(lambda: not dash._redraw_timer.isActive(), timeout=5_000)
    assert drawn() == {"loss": 3, "terms": 3, "lr": 3}      # every plot drawn, then the timer stopped
    xs, _ = dash.plots["loss"]._curves["loss"][0].getData()
    np.testing.assert_array_equal(xs, [10, 20, 30])
    qtbot.wait(100)
    assert not dash._redraw_timer.isActive()   # no events, no wake-ups (e.g. while paused)
    panel.hide()                # hidden (another tab): events draw nothing and keep no timer going ...
    panel.handle_event(StepMetrics(40, 1, {"loss": 0.02, "recon": 0.5, "kl": 0.1}, 1e-3, 100.0, 1.0, 0.6))
    qtbot.wait(150)
    assert not dash._redraw_timer.isActive() and drawn()["loss"] == 3
    panel.show()                # ... until it is shown again
    qtbot.waitUntil(lambda: drawn() == {"loss": 4, "terms": 4, "lr": 4}, timeout=5_000)


def test_the_header_says_pausing_until_the_trainer_has_paused(panel):
    """Pause is asked for at step 30; the trainer finishes the steps in flight (to step 34) before its "paused" line:
    until then the header says "pausing", not "paused"."""
    dash = panel.dashboard
    header = dash.progress_label
    dash.show_event(RunStarted("", {"train": {"epochs": 2}}, {}, "cpu", 100, 50))
    dash.show_event(StepMetrics(30, 1, {"loss": 1.0}, 1e-3, 100.0, 5.0, 0.3))
    dash.redraw()
    assert "img/s" in header.text()
    dash.set_paused(True)
    dash.redraw()
    assert header.text().startswith("pausing after this step · epoch 1/2 · step 30"), header.text()
    dash.show_event(StepMetrics(34, 1, {"loss": 1.0}, 1e-3, 100.0, 5.0, 0.34))   # in flight when pause was asked
    dash.redraw()
    assert header.text().startswith("pausing after this step · epoch 1/2 · step 34"), header.text()
    assert "img/s" not in header.text() and "ETA" not in header.text()
    dash.show_event(LogMessage("info", "paused", 34))   # the trainer has stopped stepping
    dash.redraw()
    assert header.text() == "paused · epoch 1/2 · step 34/100", header.text()
    dash.set_paused(False)
    dash.redraw()
    assert header.text().startswith("resumed · "), header.text()
    dash.finish()


def test_following_another_run_folder_shows_only_its_log_and_marks_its_plots_when_it_ends(panel, qtbot, tmp_path):
    """Following run B while run A is followed (or after a run was shown): the log is B's alone (A's queued events and
    lines do not leak in); when B ends, the form is the user's again and the plots are marked as B's."""
    mine = panel.config()
    meta = {"class_names": [str(i) for i in range(10)]}
    run_a, run_b = tmp_path / "run-a", tmp_path / "run-b"
    for run in (run_a, run_b):
        run.mkdir()
    _write(run_a / "metrics.jsonl", [RunStarted(str(run_a), {"train": {"epochs": 9}}, meta, "cpu-of-run-a", 90, 10),
                                     LogMessage("info", "a line of run A", 1),
                                     StepMetrics(5, 1, {"loss": 7.0}, 1e-3, 500.0, 3.0, 5 / 90)])
    panel.follow_run(str(run_a))
    log_view = panel.dashboard.log_view
    qtbot.waitUntil(lambda: "a line of run A" in log_view.toPlainText(), timeout=20_000)
    _write(run_b / "metrics.jsonl", [RunStarted(str(run_b), {"train": {"epochs": 3}}, meta, "cpu-of-run-b", 30, 10),
                                     LogMessage("info", "a line of run B", 1),
                                     StepMetrics(10, 1, {"loss": 3.0}, 1e-3, 500.0, 2.0, 10 / 30),
                                     RunEnded("completed", "done", 30, 3, 2.5)])
    panel.follow_run(str(run_b))     # stops following A (its end is delivered while joining it), then follows B
    qtbot.waitUntil(lambda: panel.mode == "idle" and panel.last_status == "completed", timeout=20_000)
    qtbot.wait(200)     # anything of run A still queued would land now
    text = log_view.toPlainText()
    assert "a line of run B" in text and "cpu-of-run-b" in text and "run completed" in text
    assert "run A" not in text and "cpu-of-run-a" not in text and str(run_a) not in text, text
    np.testing.assert_allclose(panel.dashboard.plots["loss"].series["loss"].ys, [3.0])
    # the form is the user's again, and the plots say whose they are
    assert panel.mode == "idle" and panel.config() == mine
    note = panel.dashboard.shown_note
    assert note.isVisibleTo(panel) and str(run_b) in note.text() and "completed" in note.text()
    entry_a = panel.state.entry_for_run("follow-1")
    assert entry_a is None or entry_a.status == "not followed"


def test_the_progress_line_changing_length_does_not_resize_the_plots(qtbot):
    """The header's text grows and shrinks with every step (img/s, ETA); it must not re-lay the dashboard out, which
    resized every plot by a few pixels and repainted all of them at once (an event-loop stall while training)."""
    from explorer.panels.dashboard import RunDashboard

    dash = RunDashboard()
    qtbot.addWidget(dash)
    dash.resize(560, 600)
    dash.show()
    dash.show_event(RunStarted("", {"train": {"epochs": 100000}}, {}, "cpu", 10_000_000, 22))
    widths = []
    for i, (rate, eta) in enumerate([(9.0, 5.0), (123456.0, 3_600_000.0), (9.0, 5.0), (123456.0, 3_600_000.0)]):
        dash.show_event(StepMetrics(10_000 * (i + 1), 99_999, {"loss": 1.0}, 1e-3, rate, eta, 0.5))
        dash.redraw()
        qtbot.wait(20)
        widths.append(dash.plots["loss"].width())
    assert len(set(widths)) == 1, widths
    dash.finish()
