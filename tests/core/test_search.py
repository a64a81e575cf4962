"""The settings search: an Optuna study whose trials are ordinary run folders, pruned on their validation curves,
kept within a time budget, continued by running it again, reported in HTML; one or two objectives."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("optuna", reason="the search extra is not installed")

from core.experiments.runner import run_status
from core.experiments.search import (
    Param,
    SearchEnded,
    SearchProgress,
    SearchSettings,
    open_study,
    run_search,
)
from core.experiments.search_report import write_search_report

# Tiny trials (a second or two each on a CPU); lr 1e-6 learns nothing, so its curve is the one pruning should cut.
TINY = {"model.width": 4, "model.latent_dim": 4, "model.stages": 1, "train.batch_size": 128, "train.threads": 1,
        "train.ema_decay": 0.0, "train.log_every": 4}
SPACE = (Param("train.lr", choices=(0.002, 1e-6)),)


def settings(**kw) -> SearchSettings:
    base = {"budget_s": 300.0, "trials": 7, "epochs": 4, "fixed": TINY, "space": SPACE, "seed": 1}
    return SearchSettings(**{**base, **kw})


def test_search_trials_are_run_folders_pruned_reported_and_continued(tmp_path):
    events = list(run_search(settings(), tmp_path))
    end = events[-1]
    assert isinstance(end, SearchEnded) and end.status == "completed", end
    study = open_study(settings(), tmp_path)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 7 and (tmp_path / "study.db").is_file()
    assert trials[0].params == {"train.lr": 0.002}, "the first trial is the preset's settings"
    for t in trials:
        run = tmp_path / t.user_attrs["run"]
        assert (run / "metrics.jsonl").is_file() and (run / "config.json").is_file()
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["lr"] == t.params["train.lr"] and config["model"]["beta"] == 0.3
    states = {t.number: t.state.name for t in trials}
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and all(t.params["train.lr"] == 1e-6 for t in pruned), states
    assert all(run_status(tmp_path / t.user_attrs["run"]) == "stopped" for t in pruned)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    best = max(complete, key=lambda t: t.value)
    assert end.best == (best.number,) and best.params["train.lr"] == 0.002
    for t in complete:     # the value is the run's best validation ELBO, as its record says
        ends = [json.loads(line) for line in (tmp_path / t.user_attrs["run"] / "metrics.jsonl").read_text()
                .splitlines() if '"type": "end"' in line]
        assert t.value == pytest.approx(ends[-1]["best_val"])
    assert [e.message for e in events if isinstance(e, SearchProgress) and e.stage == "pruned"]

    text = write_search_report(study, tmp_path).read_text()
    assert "Best trial" in text and f"Best trial {best.number}" in text and "the preset's own settings" in text
    assert text.count("<tr>") >= len(trials) and "Which settings mattered" in text and "<svg" in text
    assert "samples of trial" in text and (tmp_path / best.user_attrs["run"] / "eval-samples.png").is_file()

    logs = {t.number: (tmp_path / t.user_attrs["run"] / "metrics.jsonl").read_bytes() for t in trials}
    again = list(run_search(settings(trials=2), tmp_path))
    assert again[-1].status == "completed"
    study = open_study(settings(), tmp_path)
    assert len(study.trials) == 9 and (tmp_path / "trial-0008").is_dir()
    assert logs == {t.number: (tmp_path / t.user_attrs["run"] / "metrics.jsonl").read_bytes() for t in trials}


def test_search_keeps_its_budget_and_stops_cleanly(tmp_path):
    events = list(run_search(settings(budget_s=4.0, trials=None, epochs=10_000), tmp_path))
    assert events[-1].status == "completed"
    study = open_study(settings(), tmp_path)
    (trial,) = study.trials
    assert trial.state.name == "FAIL" and trial.user_attrs["why"] == "cut by the budget"
    assert run_status(tmp_path / "trial-0000") == "stopped"
    assert (tmp_path / "trial-0000" / "checkpoints" / "last.safetensors").is_file()

    calls = []
    stopped = list(run_search(settings(trials=3), tmp_path / "stop", should_stop=lambda: len(calls) > 0 or
                              bool(calls.append(1))))
    assert stopped[-1].status == "stopped" and "run the search again" in stopped[-1].message


def test_two_objectives_search_a_pareto_front(tmp_path):
    s = settings(objectives=("elbo", "frechet"), trials=4, epochs=2)
    assert not s.pruned
    end = list(run_search(s, tmp_path))[-1]
    study = open_study(s, tmp_path)
    done = [t for t in study.trials if t.values]
    assert len(done) == 4 and all((tmp_path / t.user_attrs["run"] / "search-eval.json").is_file() for t in done)

    def dominates(a, b) -> bool:   # elbo up, frechet down
        return a.values[0] >= b.values[0] and a.values[1] <= b.values[1] and a.values != b.values

    front = {t.number for t in done if not any(dominates(o, t) for o in done)}
    assert set(end.best) == front
    text = write_search_report(study, tmp_path).read_text()
    assert "Pareto front" in text and text.count("<circle") == 4


@pytest.mark.parametrize(("argv", "expected"), [
    (["--objective", "elbo,elbo"], "give one or two different names"),
    (["--objective", "speed"], "give one or two different names"),
    (["--budget", "10"], "--budget: '10' is not a duration"),
    (["--dataset", "nodata"], "unknown dataset"),
    (["--preset", "nopreset"], "unknown preset 'nopreset'"),
    (["--preset", "digits-vq"], "the search starts from a VAE preset; 'digits-vq' is a vqvae preset"),
])
def test_cli_search_refuses_bad_input_in_one_line(tmp_path, capsys, argv, expected):
    from core.cli.main import main

    out = tmp_path / "s"
    assert main(["search", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_search_without_optuna_is_one_line(tmp_path, capsys, monkeypatch):
    from core.cli.main import main

    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["search", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vae-explorer[search]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_cli_search_runs_reports_and_refuses_another_objective_on_its_study(tmp_path, capsys):
    from core.cli.main import main

    out = tmp_path / "s"
    assert main(["search", "--out", str(out), "--trials", "2", "--epochs", "1", "--budget", "5m", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "best: trial" in text and "report:" in text and (out / "search-report.html").is_file()
    assert main(["search", "--out", str(out), "--objective", "frechet", "--trials", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "searches elbo on digits" in err and len(err.strip().splitlines()) == 1


def test_a_search_judging_samples_also_searches_where_their_z_come_from(tmp_path):
    from core.experiments.search import SOURCE_KEY, SOURCE_PARAM

    assert SOURCE_PARAM in settings(objectives=("accuracy",)).space
    assert SOURCE_PARAM in settings(objectives=("elbo", "frechet")).space
    assert all(p.key != SOURCE_KEY for p in settings().space)      # the ELBO judges no samples
    only_mixture = (Param("train.lr", choices=(0.002,)), Param(SOURCE_KEY, choices=("density",)))
    s = settings(objectives=("accuracy",), trials=1, epochs=2, space=only_mixture)
    end = list(run_search(s, tmp_path))[-1]
    assert end.status == "completed"
    (trial,) = open_study(s, tmp_path).trials
    assert trial.params == {"train.lr": 0.002, SOURCE_KEY: "density"} and trial.state.name == "COMPLETE"
    run = tmp_path / trial.user_attrs["run"]
    scores = json.loads((run / "search-eval.json").read_text())
    assert scores["samples_from"] == "density" and trial.value == pytest.approx(scores["conditional_accuracy"])
    config = json.loads((run / "config.json").read_text())
    assert "sample" not in config and config["train"]["lr"] == 0.002    # not a training setting


def test_a_search_starts_from_the_preset_it_is_given_and_its_study_remembers_it(tmp_path):
    """--preset mnist on another dataset (the real-MNIST bench's folder): the trials start from the mnist preset's
    model and schedule on that data; the study refuses to be continued from another preset."""
    from core.errors import UserError
    from core.experiments.search import base_config

    config = base_config(SearchSettings(dataset="digits", preset="mnist"))
    assert (config.data.name, config.model.stochastic_layers, config.train.epochs) == ("digits", 3, 43)
    assert base_config(SearchSettings(dataset="digits")).model.stochastic_layers == 1
    study = open_study(SearchSettings(dataset="digits", preset="mnist"), tmp_path)
    assert study.user_attrs["preset"] == "mnist"
    with pytest.raises(UserError, match="on digits from the preset mnist"):
        open_study(SearchSettings(dataset="digits"), tmp_path)
