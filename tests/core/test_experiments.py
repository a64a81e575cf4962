"""Experiments: specs as data, the resumable runner (run folders + eval.json) and the report."""

from __future__ import annotations

import base64
import dataclasses
import json
from html.parser import HTMLParser

import pytest

from core.errors import UserError
from core.experiments.report import write_experiment_report
from core.experiments.runner import ExperimentEnded, ExperimentProgress, run_experiment, run_status
from core.experiments.spec import EXPERIMENTS, ExperimentSpec, RunSpec, beta_sweep, experiment, reference_study

# A test scale: one epoch of a tiny model (seconds on a CPU).
TINY = {"train.epochs": 1, "model.width": 4, "model.latent_dim": 4, "model.stages": 1, "train.batch_size": 128,
        "train.log_every": 2, "train.threads": 1}


def tiny_sweep(betas=(0.5, 2.0)) -> ExperimentSpec:
    spec = beta_sweep("digits", "quick", betas=betas)
    return dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **TINY}) for r in spec.runs))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
@pytest.mark.parametrize("scale", ["quick", "full"])
def test_builtin_specs_build(name, scale):
    spec = experiment(name, "digits", scale)
    configs = spec.configs()
    assert len({r.name for r in spec.runs}) == len(spec.runs) == len(configs)
    assert all(c.data.name == "digits" for c in configs.values())


def test_beta_sweep_applies_its_deltas():
    configs = beta_sweep("digits", "quick", betas=(0.1, 4.0)).configs()
    assert [c.model.beta for c in configs.values()] == [0.1, 4.0]
    assert all(c.model.width == 8 for c in configs.values())      # quick: small


def test_reference_study_design():
    configs = reference_study("cifar10", "full").configs()
    study = configs["class-airplane-vae-study"]
    assert study.data.classes == ("airplane",) and study.train.batch_size == 46 and study.train.epochs == 200
    assert not study.model.residual and study.model.likelihood == "bernoulli"     # cifar10-seed2's settings
    assert configs["class-frog-vae-ours"].model.residual                          # ours: the cifar10 preset
    assert configs["1-per-class-vae-ours"].data.per_class == 1
    assert configs["100-per-class-vae-study"].data.per_class == 100
    assert configs["all-ddpm"].model.kind == "diffusion"
    digits = reference_study("digits", "quick").configs()
    assert digits["class-0-vae-study"].data.classes == ("0",) and digits["class-1-vae-ours"].data.classes == ("1",)


def test_bad_specs_are_user_errors():
    with pytest.raises(UserError, match="unique"):
        ExperimentSpec("x", "", "digits", (RunSpec("a"), RunSpec("a")))
    with pytest.raises(UserError, match="folder name"):
        RunSpec("../a")
    with pytest.raises(UserError, match="SECTION.FIELD"):
        RunSpec("a", {"beta": 1.0})
    with pytest.raises(UserError, match="unknown VAEConfig"):
        ExperimentSpec("x", "", "digits", (RunSpec("a", {"model.betta": 1.0}),)).configs()
    with pytest.raises(UserError, match="unknown experiment"):
        experiment("nope")
    with pytest.raises(UserError, match="scale"):
        beta_sweep("digits", "huge")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def test_beta_sweep_end_to_end_then_nothing_retrained(tmp_path):
    spec = tiny_sweep()
    seen: list[ExperimentProgress] = []
    events = list(run_experiment(spec, tmp_path, progress=seen.append))
    end = events[-1]
    assert isinstance(end, ExperimentEnded) and end.status == "completed", end
    assert seen and seen[-1].fraction == pytest.approx(1.0)
    for run in spec.runs:
        folder = tmp_path / run.name
        assert run_status(folder) == "completed"
        assert (folder / "checkpoints" / "best.safetensors").is_file()
        result = json.loads((folder / "eval.json").read_text())
        assert result["kl"] > 0 and result["recon"] > 0 and "active_units" in result and "fid_like" in result
    report = write_experiment_report(spec, tmp_path)
    text = report.read_text()
    parser = _Tags()
    parser.feed(text)
    assert "svg" in parser.tags and "table" in parser.tags
    assert "rate-distortion" in text
    kl = json.loads((tmp_path / "beta-0.5" / "eval.json").read_text())["kl"]
    assert f"{kl:.4g}" in text                                  # the table holds the measured numbers
    assert text.count('alt="samples at beta=') == 2 and "Samples per β" in text   # a sample grid per beta
    grid = (tmp_path / "beta-0.5" / "eval-samples.png").read_bytes()
    assert base64.b64encode(grid).decode() in text
    assert "Fréchet score (our classifier)" in text and "FID (Inception-v3)" not in text   # quick: no Inception

    logs = {r.name: (tmp_path / r.name / "metrics.jsonl").read_bytes() for r in spec.runs}
    evals = {r.name: (tmp_path / r.name / "eval.json").read_bytes() for r in spec.runs}
    again = list(run_experiment(spec, tmp_path))
    assert again[-1].status == "completed"
    assert {e.stage for e in again if isinstance(e, ExperimentProgress)} == {"skipped", "done"}
    assert logs == {r.name: (tmp_path / r.name / "metrics.jsonl").read_bytes() for r in spec.runs}
    assert evals == {r.name: (tmp_path / r.name / "eval.json").read_bytes() for r in spec.runs}


def test_interrupted_experiment_resumes_where_it_stopped(tmp_path):
    spec = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
    second = spec.runs[1].name
    started = []

    def should_stop() -> bool:   # stop once the second run has trained a few steps
        return any(e.run == second and e.train_event is not None and type(e.train_event).__name__ == "StepMetrics"
                   for e in started)

    events = list(run_experiment(spec, tmp_path, progress=started.append, should_stop=should_stop))
    assert isinstance(events[-1], ExperimentEnded) and events[-1].status == "stopped"
    assert run_status(tmp_path / spec.runs[0].name) == "completed"
    assert run_status(tmp_path / second) == "stopped"
    first_log = (tmp_path / spec.runs[0].name / "metrics.jsonl").read_bytes()

    again = list(run_experiment(spec, tmp_path))
    assert again[-1].status == "completed"
    stages = [(e.run, e.stage) for e in again if isinstance(e, ExperimentProgress) and e.train_event is None]
    assert (spec.runs[0].name, "skipped") in stages and (second, "resuming") in stages
    assert (tmp_path / spec.runs[0].name / "metrics.jsonl").read_bytes() == first_log
    assert run_status(tmp_path / second) == "completed"


def test_cli_unknown_experiment_dataset_and_bad_out(tmp_path, capsys):
    from core.cli.main import main

    assert main(["experiment", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'nope'" in err and "beta-sweep" in err and len(err.strip().splitlines()) == 1
    assert main(["experiment", "beta-sweep", "--dataset", "nodata", "--out", str(tmp_path / "x")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["experiment", "beta-sweep", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_reference_study_report_puts_our_numbers_beside_the_study(tmp_path):
    spec = reference_study("cifar10", "quick")
    result = {"elbo": -1234.5, "ssim": 0.61, "ssim_samples_vs_test_as_study": 0.99871, "conditional_accuracy": 1.0,
              "ssim_samples_vs_test_correct": 0.123, "fid_like": 42.0}
    (tmp_path / "class-airplane-vae-study").mkdir()
    (tmp_path / "class-airplane-vae-study" / "eval.json").write_text(json.dumps(result))
    text = write_experiment_report(spec, tmp_path).read_text()
    assert "0.99872" in text and "0.99969" in text            # the study's published SSIM
    assert "0.99871" in text and "0.123" in text and "-1234" in text
    assert "Why the study's SSIM cannot be right" in text and "not evaluated" in text


def test_runs_go_to_torchrun_one_after_another_and_resume(tmp_path):
    """Each run is a real `torchrun --nproc_per_node 1 ... train` (gloo on the CPU); a stop interrupts it through
    SIGINT and the next launch resumes from its checkpoint."""
    spec = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
    spec = dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, "train.epochs": 3}) for r in spec.runs))
    first, second = (r.name for r in spec.runs)
    seen: list[ExperimentProgress] = []

    def should_stop() -> bool:   # stop the second run once it has logged a step
        return any(e.run == second and type(e.train_event).__name__ == "StepMetrics" for e in seen)

    events = list(run_experiment(spec, tmp_path, progress=seen.append, should_stop=should_stop, torchrun=1))
    assert isinstance(events[-1], ExperimentEnded) and events[-1].status == "stopped", events[-1]
    assert run_status(tmp_path / first) == "completed"
    assert run_status(tmp_path / second) == "stopped"
    assert (tmp_path / second / "checkpoints" / "last.safetensors").is_file()
    assert any("torchrun with 1 processes" in e.message for e in seen if e.run == first)
    steps = [e.train_event.step for e in seen if e.run == first and type(e.train_event).__name__ == "StepMetrics"]
    assert steps == sorted(steps) and steps, "progress follows the launched run's metrics.jsonl"

    again = list(run_experiment(spec, tmp_path, torchrun=1))
    assert again[-1].status == "completed"
    stages = [(e.run, e.stage) for e in again if isinstance(e, ExperimentProgress) and e.train_event is None]
    assert (first, "skipped") in stages and (second, "resuming") in stages
    assert run_status(tmp_path / second) == "completed"
    records = [json.loads(line) for line in (tmp_path / second / "metrics.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records if r.get("type") == "end"] == ["stopped", "completed"]


def test_torchrun_launch_failure_is_reported_per_run(tmp_path):
    spec = dataclasses.replace(tiny_sweep((1.0,)), evaluate=False)
    spec = dataclasses.replace(spec, runs=(RunSpec("bad", {**spec.runs[0].delta, "data.name": "folder:/nonexistent"}),))
    events = list(run_experiment(spec, tmp_path, torchrun=1))
    assert events[-1].status == "failed" and events[-1].failed == ("bad",)
    failed = [e for e in events if isinstance(e, ExperimentProgress) and e.stage == "failed"]
    assert failed and "torchrun exited with" in failed[0].message and "/nonexistent" in failed[0].message
