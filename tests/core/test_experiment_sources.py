"""Experiments judge samples from the learned priors too (`experiment --from density,diffusion-prior`), through the
same samplers and evaluate() as `eval --from`: each source's numbers in eval.json and a table per source in the
report. Real tiny runs on the digits."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.cli.main import main
from core.errors import UserError
from core.experiments.report import write_experiment_report
from core.experiments.runner import ExperimentProgress, run_experiment
from core.experiments.spec import RunSpec, beta_sweep

# One epoch of a small VAE (seconds on a CPU); 8 latent dimensions so that the fitted sources have room to differ.
TINY = {"train.epochs": 2, "model.width": 8, "model.latent_dim": 8, "model.stages": 1, "train.batch_size": 128,
        "train.log_every": 4, "train.threads": 1}
LEARNED = ("prior", "density", "diffusion-prior")
SOURCE_KEYS = ("conditional_accuracy", "fid_like", "precision", "recall", "hole_score")


def one_run_sweep(**fields):
    spec = beta_sweep("digits", "quick", betas=(1.0,))
    spec = dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **TINY}) for r in spec.runs))
    return dataclasses.replace(spec, **fields)


def stages(events) -> set[str]:
    return {e.stage for e in events if isinstance(e, ExperimentProgress)}


def test_sources_are_judged_added_later_and_reported(tmp_path):
    plain = one_run_sweep()
    assert list(run_experiment(plain, tmp_path))[-1].status == "completed"
    run_dir = tmp_path / plain.runs[0].name
    before = json.loads((run_dir / "eval.json").read_text())
    assert not any(k.startswith(("density_", "diffusion-prior_")) for k in before)   # the default: the prior only
    log = (run_dir / "metrics.jsonl").read_bytes()

    learned = dataclasses.replace(plain, sources=LEARNED, prior_train_steps=200)
    events = list(run_experiment(learned, tmp_path))
    assert events[-1].status == "completed"
    assert "evaluated" in stages(events) and (run_dir / "metrics.jsonl").read_bytes() == log   # not retrained
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["samples_from"] == "prior"
    for source in ("density", "diffusion-prior"):
        for key in SOURCE_KEYS:
            value = result[f"{source}_{key}"]
            assert isinstance(value, float) and 0 <= value <= (1e6 if key == "fid_like" else 1), (source, key)
    assert result["latent_diffusion_prior"].startswith("diffusion prior") and "latent_density" in result
    # The prior's own numbers are those of the plain evaluation: every source draws with its own seeded generator.
    for key in SOURCE_KEYS:
        assert result[key] == pytest.approx(before[key], rel=1e-9, abs=1e-12), key
    # The fitted sources put z where the data's latents are: fewer prior holes than N(0, I).
    assert result["density_hole_score"] < result["hole_score"]
    assert result["diffusion-prior_hole_score"] < result["hole_score"]

    again = list(run_experiment(learned, tmp_path))       # all sources there: nothing evaluated again
    assert "evaluating" not in stages(again)
    assert json.loads((run_dir / "eval.json").read_text()) == result

    text = write_experiment_report(learned, tmp_path).read_text()
    assert "Samples by source of z" in text
    table = text[text.index("Samples by source of z"):]
    for source in LEARNED:
        assert f"<td>{source}</td>" in table
    for key in ("density_fid_like", "diffusion-prior_recall", "diffusion-prior_hole_score", "fid_like"):
        assert f"{result[key]:.3g}" in table, key


def test_report_without_other_sources_has_no_source_table(tmp_path):
    spec = one_run_sweep()
    (tmp_path / spec.runs[0].name).mkdir()
    (tmp_path / spec.runs[0].name / "eval.json").write_text(json.dumps({"fid_like": 3.0, "samples_from": "prior"}))
    assert "Samples by source of z" not in write_experiment_report(spec, tmp_path).read_text()


def test_bad_sources_are_user_errors():
    with pytest.raises(UserError, match="the prior first"):
        one_run_sweep(sources=("density",))
    with pytest.raises(UserError, match="add --from diffusion-prior"):
        one_run_sweep(sources=("prior", "density"), prior_train_steps=10)


@pytest.mark.parametrize("flags, expected", [
    (["--from", "mixture"], "the per-class mixture is 'density'"),
    (["--from", ","], "give one or more of prior, density, diffusion-prior"),
    (["--from", "density", "--prior-train-steps", "5"], "add --from diffusion-prior"),
    (["--prior-train-steps", "0", "--from", "diffusion-prior"], "--prior-train-steps"),
])
def test_cli_refuses_bad_sources_in_one_line(tmp_path, capsys, flags, expected):
    out = tmp_path / "x"
    assert main(["experiment", "beta-sweep", "--out", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_from_reaches_the_runs_and_the_report(tmp_path, capsys, monkeypatch):
    from core.experiments import spec as specs

    monkeypatch.setitem(specs.EXPERIMENTS, "beta-sweep", lambda dataset, scale: one_run_sweep())
    out = tmp_path / "exp"
    assert main(["experiment", "beta-sweep", "--out", str(out), "--quiet", "--from", "density"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    result = json.loads((out / "beta-1" / "eval.json").read_text())
    lines = printed.splitlines()          # the table per source, as text: a line per run and source
    header = lines.index(next(line for line in lines if line.startswith("run ")))
    assert lines[header].split()[:4] == ["run", "z", "from", "conditional"]
    assert lines[header + 1].split()[:2] == ["beta-1", "prior"] and lines[header + 2].split()[:2] == ["beta-1",
                                                                                                      "density"]
    assert f"{result['density_fid_like']:.3g}" in lines[header + 2].split()
    assert isinstance(result["density_fid_like"], float) and "diffusion-prior_fid_like" not in result
    text = (out / "report.html").read_text()
    assert "Samples by source of z" in text and f"{result['density_fid_like']:.3g}" in text


def test_a_class_of_one_image_gets_a_mixture_at_its_latent(bundled_vae):
    """The reference study's "1 per class" runs: scikit-learn's mixture refuses one point; the density is then a
    Gaussian at that image's latent with the fit's regularising spread (what a fit of one point comes to)."""
    import torch

    from core.config import with_overrides
    from core.data.datasets import load_dataset
    from core.images import as_float
    from core.latent.density import REG_COVAR, fit_density

    data = load_dataset(with_overrides(bundled_vae.config.data, per_class=1))
    train = data.train
    assert train.labels.bincount().tolist() == [1] * 10
    density = fit_density(bundled_vae.model, train)
    with torch.no_grad():
        mu = bundled_vae.model.encode(as_float(train.images), train.labels)[0]
    labels = train.labels.repeat_interleave(50)
    z = density.sample(labels, torch.Generator().manual_seed(0))
    spread = (z - mu.repeat_interleave(50, dim=0)).std(dim=0)
    assert spread.mean() == pytest.approx(REG_COVAR ** 0.5, rel=0.25)    # around each image's own latent


def test_a_source_that_cannot_be_fitted_is_said_and_the_others_judged(tmp_path, monkeypatch):
    from core.latent.samplers import DiffusionPriorSampler

    def refuse(self, loaded, dataset, **kw):
        raise UserError("the diffusion prior needs at least two encoded images to fit")

    monkeypatch.setattr(DiffusionPriorSampler, "fit", refuse)
    spec = one_run_sweep(sources=LEARNED)
    assert list(run_experiment(spec, tmp_path))[-1].status == "completed"
    result = json.loads((tmp_path / "beta-1" / "eval.json").read_text())
    assert isinstance(result["fid_like"], float) and isinstance(result["density_fid_like"], float)
    assert "diffusion-prior_fid_like" not in result
    assert result["diffusion-prior_not_judged"] == "the diffusion prior needs at least two encoded images to fit"
    assert "evaluating" not in stages(run_experiment(spec, tmp_path))    # said once, not tried at every launch
    text = write_experiment_report(spec, tmp_path).read_text()
    assert "diffusion-prior: not judged (the diffusion prior needs at least two encoded images to fit)" in text
