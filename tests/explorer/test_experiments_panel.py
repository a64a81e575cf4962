"""The Experiments panel runs a (tiny) beta sweep end to end: progress, the report, the runs in the models list and
the Runs tab's folders; a second Start retrains nothing."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSettings

from core.experiments.spec import RunSpec, beta_sweep
from explorer.panels.experiments import ExperimentsPanel
from explorer.state import AppState

TINY = {"train.epochs": 1, "model.width": 4, "model.latent_dim": 2, "model.stages": 1, "data.per_class": 10,
        "train.batch_size": 32}


def tiny_sweep():
    spec = beta_sweep("digits", "quick", betas=(0.5, 2.0))
    return dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **TINY}) for r in spec.runs))


def test_a_tiny_beta_sweep_from_the_panel(qtbot, tmp_path):
    state = AppState()
    panel = ExperimentsPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    panel.out.setText(str(tmp_path / "sweep"))
    assert panel.start(tiny_sweep())
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=300_000)
    assert panel.progress.value() == 1000
    assert panel.report_path is not None and panel.report_path.is_file()
    assert "<svg" in panel.report_path.read_text()
    assert panel.report_button.isEnabled()
    qtbot.waitUntil(lambda: len(state.models) == 2, timeout=30_000)   # checkpoints load on workers
    names = sorted(e.name for e in state.models)
    assert len(names) == 2 and all(n.startswith("beta-sweep/") for n in names)
    assert str(tmp_path / "sweep") in (QSettings().value("runs/folders") or [])
    # Start again: everything is done, nothing is retrained.
    logs = {p: p.read_bytes() for p in (tmp_path / "sweep").glob("*/metrics.jsonl")}
    assert panel.start(tiny_sweep())
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=120_000)
    assert all(p.read_bytes() == b for p, b in logs.items())
    assert "already trained" in panel.log_view.toPlainText()
    panel.shutdown()
    QSettings().remove("runs/folders")        # leave the Runs tab's folders as other tests expect them
