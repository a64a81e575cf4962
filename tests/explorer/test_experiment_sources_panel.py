"""The Experiments tab judges samples from the learned priors too: the form's "Samples' z from" choice goes into the
experiment it starts, and the live table gets each source's columns from the runs' eval.json (a real tiny run)."""

from __future__ import annotations

import dataclasses
import json

from core.experiments.runner import run_experiment
from core.experiments.spec import RunSpec, beta_sweep
from explorer.panels.experiments import ExperimentsPanel
from explorer.state import AppState

TINY = {"train.epochs": 1, "model.width": 4, "model.latent_dim": 4, "model.stages": 1, "train.batch_size": 64,
        "train.threads": 1}


def test_the_form_chooses_the_sources_and_the_table_shows_each(qtbot, tmp_path):
    panel = ExperimentsPanel(AppState())
    qtbot.addWidget(panel)
    panel.show()
    assert panel.form.make_spec().sources == ("prior",)                  # the default: cheap
    panel.form.sources_box.setCurrentIndex(1)
    spec = panel.form.make_spec()
    assert spec.sources == ("prior", "density")

    spec = dataclasses.replace(beta_sweep("digits", "quick", betas=(1.0,)), sources=spec.sources)
    spec = dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **TINY}) for r in spec.runs))
    assert list(run_experiment(spec, tmp_path / "sweep"))[-1].status == "completed"
    result = json.loads((tmp_path / "sweep" / "beta-1" / "eval.json").read_text())

    panel.follow(tmp_path / "sweep")
    qtbot.waitUntil(lambda: panel.table.finished_rows() == 1, timeout=30_000)
    table = panel.table
    for key, header in (("fid_like", "Fréchet score"), ("density_fid_like", "Fréchet score, z from density"),
                        ("density_recall", "recall, z from density"), ("hole_score", "hole score"),
                        ("density_hole_score", "hole score, z from density")):
        assert table.text(0, header) == f"{result[key]:.4g}", header
    assert "hole score, z from density" in [table.y_box.itemText(i) for i in range(table.y_box.count())]
    panel.resize(1200, 700)
    assert panel.grab().save(str(tmp_path / "experiment-sources.png"))   # looked at: the columns beside the prior's
    panel.shutdown()
