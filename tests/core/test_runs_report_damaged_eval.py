"""The runs report (core.runs.report) says, in the run's evaluation section, why a run's eval.json that is there was not
read (one line, from the run history's one reader read_run_eval), so a damaged file never looks like "not evaluated"; a
valid one shows its numbers and no such line."""

from __future__ import annotations

import json

from core.runs.evaluation import read_run_eval
from core.runs.report import report_html

VALID = json.dumps({"split": "test", "fid_like": 12.5, "precision": 0.875, "recall": 0.25})


def evaluation_section(text: str) -> str:
    start = text.index("<h2>Evaluation (test split)</h2>")
    return text[start:text.index("<h2>", start + 1)]


def test_a_damaged_eval_json_is_a_line_in_the_evaluation_section(finished_run, tmp_path):
    good = finished_run(tmp_path / "good", VALID)
    cut = finished_run(tmp_path / "cut-short", VALID[:30])          # a truncated write
    problem = read_run_eval(cut).problem
    assert problem == "eval.json is not valid JSON (cut short or damaged)"

    section = evaluation_section(report_html([good, cut]))
    assert "<td>good</td>" in section and "<td>0.875</td>" in section    # the valid run's numbers
    assert f'<p class="unreadable">cut-short: {problem}</p>' in section
    assert "good:" not in section                                       # no problem line for the valid run


def test_a_report_of_only_damaged_runs_still_has_the_section(finished_run, tmp_path):
    listed = finished_run(tmp_path / "a-list", "[1, 2]")
    section = evaluation_section(report_html([listed]))
    assert "<table" not in section
    assert '<p class="unreadable">a-list: eval.json holds a JSON list, not an evaluation</p>' in section


def test_valid_and_missing_evaluations_have_no_problem_line(finished_run, tmp_path):
    good = finished_run(tmp_path / "good", VALID)
    never = finished_run(tmp_path / "never-evaluated")
    text = report_html([good, never])
    assert 'class="unreadable"' not in evaluation_section(text)
    assert "never-evaluated" not in evaluation_section(text)
    assert "Evaluation (test split)" not in report_html([never])       # nothing evaluated, nothing damaged: no section
