"""The prior's hole score (core/evaluation/holes.py) where a user reads it: `vae-explorer eval` (per source of z, per
class, its k chosen with --hole-k; bad inputs one line, exit 2), the runs report (a per-class table per run and source)
and the beta sweep's table. On the bundled digits VAE and a tiny real beta sweep on the digits."""

from __future__ import annotations

import json
import shutil

import pytest

from core import cli
from core.cli.evaluate import format_eval
from core.data.datasets import load_dataset
from core.evaluation.evaluate import evaluate
from core.experiments.report import experiment_report_html
from core.latent.samplers import make_sampler
from core.paths import bundled_model
from core.runs.evaluation import hole_scores
from core.runs.report import report_html
from core.training.checkpoint import load_model

QUICK = ["--iwae-k", "0", "--samples-per-class", "10", "--quiet"]


def _per_class(line: str) -> list[float | None]:
    """The numbers of a 'hole score per class' row: '0: 0.98  1: —  ...'."""
    cells = line.split("  ", 1)[1].split(": ")[1:]
    return [None if c.split()[0] == "—" else float(c.split()[0]) for c in cells]


def test_eval_prints_each_sources_hole_score_per_class_with_the_chosen_k(capsys, bundled_vae):
    path = str(bundled_vae.path)
    assert cli.main(["eval", path, "--from", "both", "--hole-k", "3", "--json", *QUICK]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hole_k"] == 3 and "3rd neighbour" in result["hole_score_note"]
    assert len(result["hole_score_per_class"]) == len(result["density_hole_score_per_class"]) == 10
    # N(0, I) puts its z where no digit is encoded; the class mixture stays on the data
    assert result["hole_score"] > 0.8 and result["density_hole_score"] < result["hole_score"] - 0.4

    assert cli.main(["eval", path, "--from", "both", "--hole-k", "3", *QUICK]) == 0
    table = capsys.readouterr().out
    assert table == format_eval(result) + "\n"          # the same seeded evaluation, as a table
    rows = {line.split("  ")[0]: line for line in table.splitlines() if line.startswith("hole score per class")}
    assert set(rows) == {"hole score per class, z from prior", "hole score per class, z from density"}
    for name, prefix in (("prior", ""), ("density", "density_")):
        printed = _per_class(rows[f"hole score per class, z from {name}"])
        assert printed == [round(v, 2) for v in result[f"{prefix}hole_score_per_class"]]


def test_hole_k_that_does_not_fit_gets_one_line_and_exit_2(capsys, bundled_vae):
    path = str(bundled_vae.path)
    smallest = int(load_dataset(bundled_vae.config.data).test.labels.bincount().min())   # the data eval reads
    assert cli.main(["eval", path, "--hole-k", str(smallest), *QUICK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--hole-k {smallest}" in err and f"only {smallest} images" in err
    assert f"choose --hole-k {smallest - 1} or less" in err and "Traceback" not in err
    assert cli.main(["eval", path, "--hole-k", "0", *QUICK]) == 2            # out of range: argparse's one line
    assert capsys.readouterr().err.count("\n") == 1
    diffusion = bundled_model("diffusion")
    assert cli.main(["eval", str(diffusion), "--hole-k", "3", *QUICK]) == 2   # no latent space to measure
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VAE's latent space" in err and "diffusion" in err


def test_the_runs_report_and_the_beta_sweep_show_the_hole_scores(tiny_beta_sweep, tmp_path):
    spec, out = tiny_beta_sweep
    sweep = experiment_report_html(spec, out)
    table = sweep[sweep.index("<h2>Rate and distortion per β</h2>"):sweep.index("</table>",
                                                                                 sweep.index("Rate and distortion"))]
    assert "<th>sharpness</th><th>hole score</th>" in table
    first = json.loads((out / spec.runs[0].name / "eval.json").read_text())
    assert 0 <= first["hole_score"] <= 1 and f"<td>{first['hole_score']:.3g}</td>" in table

    # One run evaluated again with a second source of z, as `eval --from both --json` gives it
    run = tmp_path / spec.runs[0].name
    shutil.copytree(out / spec.runs[0].name, run)
    loaded = load_model(run / "checkpoints" / "best.safetensors")
    dataset = load_dataset(loaded.config.data)
    density = make_sampler("density")
    density.fit(loaded, dataset)
    result = evaluate(loaded, dataset, iwae_k=0, n_per_class=10,
                      latent_samplers={"prior": None, "density": density.sample})
    (run / "eval.json").write_text(json.dumps(result))
    scores = hole_scores(result)
    assert [s[0] for s in scores] == ["prior", "density"] and all(len(s[2]) == 10 for s in scores)

    text = report_html([run])
    holes = text[text.index("<h2>The prior's holes (test split)</h2>"):]
    holes = holes[:holes.index("</table>")]
    assert "<th>hole score</th><th>class 0</th>" in holes and "<th>class 9</th>" in holes
    for source, score, per_class in scores:
        row = holes[holes.index(f"<td>{source}</td>"):]
        row = row[:row.index("</tr>")]
        cells = [c.split("</td>")[0] for c in row.split("<td>")[1:]]
        assert cells[1] == "5" and float(cells[2]) == pytest.approx(score, abs=1e-3)
        assert [float(c) if c else None for c in cells[3:]] == pytest.approx(per_class, abs=1e-3)


def test_damaged_hole_numbers_in_eval_json_are_left_out_not_raised_on():
    assert hole_scores(None) == [] and hole_scores({"hole_score": "high"}) == []
    assert hole_scores({"hole_score": 1.5, "density_hole_score": 0.25,
                        "density_hole_score_per_class": [0.5, None, "x", float("nan"), -1, True]}) == [
        ("density", 0.25, [0.5, None, None, None, None, None])]
    assert hole_scores({"hole_score": 0.9, "samples_from": "diffusion-prior",
                        "hole_score_per_class": list(range(5000))}) == [("diffusion-prior", 0.9, [])]
