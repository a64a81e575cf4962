"""Precision, recall and sharpness in the reports: the runs report's evaluation table and the beta-sweep table, from
the eval.json files of a tiny real experiment on the digits."""

from __future__ import annotations

import json

import pytest

from core.experiments.report import experiment_report_html
from core.runs.evaluation import eval_numbers, read_eval
from core.runs.report import report_html


@pytest.fixture(scope="module")
def sweep(tiny_beta_sweep):
    return tiny_beta_sweep


def test_eval_json_holds_diversity_and_sharpness(sweep):
    spec, out = sweep
    for run in spec.runs:
        result = json.loads((out / run.name / "eval.json").read_text())
        assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1 and result["sharpness"] > 0
        numbers = eval_numbers(result)
        assert numbers["precision"] == result["precision"] and numbers["sharpness"] == result["sharpness"]
    assert read_eval(out / "no-such-run") is None


def test_other_sources_are_named_and_broken_values_left_out():
    numbers = eval_numbers({"precision": 0.9, "recall": float("nan"), "density_precision": 0.95,
                            "density_fid_like": 3.0, "fid_like_note": "text", "classifier_test_accuracy": 0.99})
    assert numbers == {"precision": 0.9, "Fréchet score (judge), z from density": 3.0,
                       "precision, z from density": 0.95}


def test_beta_sweep_table_and_runs_report_show_precision_recall_and_sharpness(sweep):
    spec, out = sweep
    text = experiment_report_html(spec, out)
    header = text[text.index("<h2>Rate and distortion per β</h2>"):]
    header = header[header.index("<thead>"):header.index("</thead>")]
    assert "<th>precision</th><th>recall</th><th>sharpness</th>" in header
    first = read_eval(out / spec.runs[0].name)
    row = text[text.index(f"<td>{spec.runs[0].name}</td>"):]
    row = row[:row.index("</tr>")]
    for key in ("precision", "recall", "sharpness"):
        assert f"<td>{first[key]:.3g}</td>" in row
    runs = report_html([out / r.name for r in spec.runs])
    table = runs[runs.index("<h2>Evaluation (test split)</h2>"):]
    table = table[:table.index("</table>")]
    assert "<th>precision</th>" in table and "<th>recall</th>" in table and "<th>sharpness</th>" in table
    assert f"{first['recall']:.4g}" in table and spec.runs[1].name in table


def test_the_hole_score_and_a_vq_vaes_numbers_are_named_for_every_source():
    numbers = eval_numbers({"hole_score": 0.2, "density_hole_score": 0.05, "density_fid_like": 3.0,
                            "codebook_perplexity": 100.5, "prior_bits_per_code": 3.9, "hole_score_note": "text"})
    assert numbers == {"hole score": 0.2, "codebook perplexity": 100.5, "code prior bits/code": 3.9,
                       "Fréchet score (judge), z from density": 3.0, "hole score, z from density": 0.05}
