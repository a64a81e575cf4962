"""The Experiments panel runs a (tiny) beta sweep end to end: the live table fills in as runs finish (the report's
columns, a scatter of beta against a number), the time left, the report, the runs in the models list and the Runs
tab's folders; a second Start retrains nothing; another panel follows the folder; two runs at once from the GUI."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PySide6.QtCore import QSettings

from core.experiments.spec import RunSpec, beta_sweep
from explorer.panels.experiment_rows import FINISHED
from explorer.panels.experiments import ExperimentsPanel
from explorer.settings import EXPERIMENT_FOLDERS, experiment_folders
from explorer.state import AppState

TINY = {"train.epochs": 1, "model.width": 4, "model.latent_dim": 2, "model.stages": 1, "data.per_class": 10,
        "train.batch_size": 32}


def tiny_sweep(**extra):
    spec = beta_sweep("digits", "quick", betas=(0.5, 2.0))
    return dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **TINY, **extra}) for r in spec.runs))


def in_flight(out, run: str) -> tuple[int, int]:
    """When the launcher handed `run` to a slot (its job file written) and when the slot said it ended (its outcome
    file written), ns; both are file times, so one clock."""
    from core.experiments.launchers.job import launch_files, outcome_file

    job = launch_files(out, run)[0]
    assert job.is_file() and outcome_file(job).is_file(), f"{run} was not trained by a slot process"
    assert json.loads(outcome_file(job).read_text())["status"] == "completed"
    return job.stat().st_mtime_ns, outcome_file(job).stat().st_mtime_ns


def make_panel(qtbot) -> tuple[AppState, ExperimentsPanel]:
    state = AppState()
    panel = ExperimentsPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    return state, panel


@pytest.mark.slow
def test_a_tiny_beta_sweep_from_the_panel(qtbot, tmp_path):
    state, panel = make_panel(qtbot)
    panel.form.out.setText(str(tmp_path / "sweep"))
    finished_seen: list[tuple[int, bool]] = []      # (runs finished, experiment still running) at each table update
    panel.table.snapshotShown.connect(lambda: finished_seen.append((panel.table.finished_rows(), panel.is_running())))
    assert panel.start(tiny_sweep())
    qtbot.waitUntil(lambda: panel.table.snapshot is not None)    # the plan, read on a worker
    assert [panel.table.text(i, "run") for i in range(2)] == ["beta-0.5", "beta-2"]
    assert panel.table.text(1, "beta") == "2"
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=300_000)
    qtbot.waitUntil(lambda: panel.table.finished_rows() == 2, timeout=30_000)
    # The table filled in run by run: one finished while the other still trained, then both.
    assert (1, True) in finished_seen, finished_seen
    assert panel.progress.value() == 1000
    for i in range(2):
        assert panel.table.text(i, "status") == "done"
        assert float(panel.table.text(i, "ELBO")) < 0 and float(panel.table.text(i, "KL (rate)")) >= 0
        assert panel.table.text(i, "duration").endswith((" s", " min"))
    # The scatter: ELBO against beta, one labelled point per run, the numbers of the table.
    assert panel.table.x_box.currentText() == "beta" and panel.table.y_box.currentText() == "ELBO"
    points = panel.table.scatter_points()
    assert [(n, x) for n, x, _ in points] == [("beta-0.5", 0.5), ("beta-2", 2.0)]
    assert [y for _, _, y in points] == pytest.approx([float(panel.table.text(i, "ELBO")) for i in range(2)], rel=1e-3)
    assert panel.eta.text() == ""           # nothing left
    assert panel.report_path is not None and panel.report_path.is_file()
    assert "<svg" in panel.report_path.read_text()
    assert panel.report_button.isEnabled()
    qtbot.waitUntil(lambda: len(state.models) == 2, timeout=30_000)   # checkpoints load on workers
    names = sorted(e.name for e in state.models)
    assert len(names) == 2 and all(n.startswith("beta-sweep/") for n in names)
    assert str(tmp_path / "sweep") in experiment_folders(QSettings())    # the Runs tab lists it (its own key)
    # Start again: everything is done, nothing is retrained.
    logs = {p: p.read_bytes() for p in (tmp_path / "sweep").glob("*/metrics.jsonl")}
    assert panel.start(tiny_sweep())
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=120_000)
    assert all(p.read_bytes() == b for p, b in logs.items())
    assert "already trained" in panel.log_view.toPlainText()
    panel.shutdown()

    # Another window follows the folder: the same rows, read from the run folders alone.
    _, other = make_panel(qtbot)
    other.follow(tmp_path / "sweep")
    qtbot.waitUntil(lambda: other.table.finished_rows() == 2, timeout=30_000)
    assert [other.table.text(i, "ELBO") for i in range(2)] == [panel.table.text(i, "ELBO") for i in range(2)]
    assert other.progress.value() == 1000
    other.shutdown()

    # Before Start, the form's experiment in that folder: the quick sweep's 5 runs, beta-2 already done there.
    _, again = make_panel(qtbot)
    again.form.name_box.setCurrentText("beta-sweep")
    again.form.out.setText(str(tmp_path / "sweep"))
    again.form.out.editingFinished.emit()
    qtbot.waitUntil(lambda: again.table.snapshot is not None and again.table.snapshot.folder == tmp_path / "sweep"
                    and again.table.finished_rows() == 1, timeout=30_000)
    assert [again.table.text(i, "status") for i in range(5)] == ["waiting", "waiting", "waiting", "done", "waiting"]
    assert again.start_button.text() == "Continue"
    again.shutdown()
    QSettings().remove(EXPERIMENT_FOLDERS)    # leave the Runs tab's folders as other tests expect them


@pytest.mark.slow
def test_two_runs_at_once_from_the_panel_followed_by_another_window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")     # the CPU's cores set the limit (a one-GPU machine allows 1)
    out = tmp_path / "parallel"
    _, panel = make_panel(qtbot)
    panel.form.out.setText(str(out))
    assert panel.form.parallel.value() == 1 and panel.form.parallel.maximum() >= 2
    panel.form.parallel.setValue(2)
    spec = tiny_sweep(**{"train.epochs": 3})
    assert panel.start(dataclasses.replace(spec, evaluate=False))
    _, watcher = make_panel(qtbot)         # "runs started elsewhere": a folder another process fills
    qtbot.waitUntil(lambda: (out / "beta-0.5").is_dir(), timeout=60_000)
    watcher.follow(out)
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=300_000)
    log = panel.log_view.toPlainText()
    assert "2 at once" in log and "experiment completed" in log, log
    # Two slot processes, each trained one run; the two runs overlapped in time.
    assert sorted(p.name for p in (out / ".launch").glob("slot-*.log")) == ["slot-0.log", "slot-1.log"]
    from core.runs.history import read_run

    a, b = read_run(out / "beta-0.5"), read_run(out / "beta-2")
    assert a.status == b.status == "completed"
    # Overlap as the launcher saw it: each run was handed to its slot (its job file written) before the other's
    # outcome came back. Run one after the other, the second job file is written only after the first outcome was
    # read. (The runs' own records are not the proof: a slot still importing torch on a busy machine can record its
    # first step after the other run's last, though both processes held their runs at once.)
    launched = {run: in_flight(out, run) for run in ("beta-0.5", "beta-2")}
    (a_in, a_out), (b_in, b_out) = launched.values()
    assert a_in < b_out and b_in < a_out, launched
    qtbot.waitUntil(lambda: watcher.table.finished_rows() == 2, timeout=30_000)
    assert {watcher.table.text(i, "status") for i in range(2)} <= set(FINISHED)
    assert [watcher.table.text(i, "beta") for i in range(2)] == ["0.5", "2"]
    panel.shutdown()
    watcher.shutdown()
    QSettings().remove(EXPERIMENT_FOLDERS)


def test_the_dataset_is_chosen_from_a_list(qtbot, tmp_path, monkeypatch):
    _, panel = make_panel(qtbot)
    box = panel.form.dataset
    panel.form.name_box.setCurrentText("beta-sweep")
    items = [box.itemText(i) for i in range(box.count())]
    assert items[:2] == ["digits", "mnist"] and items[-1] == "folder…" and "cifar10" in items
    assert panel.form.make_spec().configs()["beta-1"].data.name == "digits"
    box.set_dataset("fashion-mnist")
    assert panel.form.make_spec().configs()["beta-1"].data.name == "fashion-mnist"
    assert "fashion-mnist" in panel.form.out_dir(panel.form.make_spec()).name
    # "folder…" asks for a folder; it joins the list as folder:PATH and is what the experiment trains on.
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "imgs"))
    box.activated.emit(box.count() - 1)
    assert box.dataset() == f"folder:{tmp_path / 'imgs'}"
    assert box.itemText(box.count() - 1) == "folder…"
    assert panel.form.make_spec().configs()["beta-1"].data.name == f"folder:{tmp_path / 'imgs'}"
    # A cancelled dialog keeps the previous choice.
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    box.setCurrentIndex(box.count() - 1)
    box.activated.emit(box.count() - 1)
    assert box.dataset() == f"folder:{tmp_path / 'imgs'}"
    # The search page offers the same list.
    assert [panel.study.dataset.itemText(i) for i in range(4)] == items[:4]
    panel.shutdown()
