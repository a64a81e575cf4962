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


def test_the_diffusion_priors_fit_steps_go_into_the_spec_as_the_cli_flag_and_are_kept(qtbot):
    """"Diffusion prior: fit steps": enabled only with the diffusion prior among the sources, its default that of
    `experiment` without --prior-train-steps (the prior's own), N steps give the spec `--prior-train-steps N` gives,
    and the choice is kept in the panel's settings (a workspace) like the sources' choice."""
    from core.experiments.spec import experiment
    from core.latent.diffusion_prior import DiffusionPriorSettings
    from core.latent.samplers import parse_sources

    state = AppState()
    panel = ExperimentsPanel(state)
    qtbot.addWidget(panel)
    panel.show()
    form = panel.form
    assert form.prior_steps.value() == DiffusionPriorSettings().train_steps
    assert not form.prior_steps.isEnabled() and not form.prior_steps_label.isEnabled()
    assert form.make_spec().prior_train_steps == 0
    form.sources_box.setCurrentIndex(2)                    # prior + mixture + diffusion prior
    assert form.prior_steps.isEnabled()
    form.prior_steps.setValue(750)
    spec = form.make_spec()
    cli = dataclasses.replace(experiment(form.name_box.currentText(), "digits", "quick"),
                              sources=parse_sources("prior,density,diffusion-prior"), prior_train_steps=750)
    assert spec.prior_train_steps == 750 and spec == cli    # core/cli/experiment.py's recipe for these flags

    saved = state.settings.to_dict()
    assert saved["experiments.prior_steps"] == 750 and saved["experiments.sources"] == form.sources_box.currentText()
    other = AppState()
    again = ExperimentsPanel(other)
    qtbot.addWidget(again)
    assert again.form.make_spec().prior_train_steps == 0   # a fresh settings: the prior only, the default steps
    other.settings.replace(saved)                          # a workspace opened
    assert again.form.prior_steps.value() == 750 and again.form.prior_steps.isEnabled()
    assert again.form.make_spec() == spec
    again.form.sources_box.setCurrentIndex(0)              # the prior only: no fit, the steps kept but unused
    assert not again.form.prior_steps.isEnabled() and again.form.make_spec().prior_train_steps == 0
    assert other.settings.to_dict()["experiments.prior_steps"] == 750
