"""`vae-explorer runs` shows each run's evaluation (Fréchet score, precision, recall, conditional accuracy) under the
run table, read by the run history's one reader (core.runs.evaluation.read_run_eval, as `--csv` reads them): from the
run's eval.json, else its saved `eval --save`; "—" for a run without; a damaged evaluation file is "—" and one line,
never a traceback. Real tiny runs trained and evaluated through the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cli
from core.runs.evaluation import eval_numbers, hole_scores, read_eval, read_run_eval

TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--set", "train.log_every=2"]
QUICK_EVAL = ["--quiet", "--iwae-k", "0", "--samples-per-class", "5"]
COLUMNS = ("fid_like", "precision", "recall", "conditional_accuracy")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny run trained once, evaluated twice with `eval --save` (seeds 0 then 1: two real results, two files, the
    second the newer): [(file name, result)] in that order."""
    run = tmp_path_factory.mktemp("eval-table") / "trained"
    assert cli.main(["train", *TINY, "--out", str(run), "--quiet"]) == 0
    ckpt = str(run / "checkpoints" / "best.safetensors")
    results = []
    for seed in ("0", "1"):
        before = set((run / "eval").glob("*.json")) if (run / "eval").exists() else set()
        assert cli.main(["eval", ckpt, *QUICK_EVAL, "--seed", seed, "--save"]) == 0
        (saved,) = set((run / "eval").glob("*.json")) - before
        results.append((saved.name, json.loads(saved.read_text())))
    assert results[0][1]["fid_like"] != results[1][1]["fid_like"]
    return run, results


def copy_run(run: Path, to: Path, *, keep_saved: bool) -> Path:
    shutil.copytree(run, to, ignore=None if keep_saved else shutil.ignore_patterns("eval"))
    return to


def runs_output(capsys, *folders: Path, csv_file: Path | None = None) -> tuple[str, str]:
    argv = ["runs", *map(str, folders), *(["--csv", str(csv_file)] if csv_file else [])]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err, (out, err)
    return out, err


def eval_rows(out: str) -> dict[str, list[str]]:
    """The evaluation table's rows: run name -> [Fréchet, prec, recall, acc, from]."""
    lines = out.split("\n\n", 1)[1].splitlines()
    assert lines[0].split() == ["evaluation", "Fréchet", "prec", "recall", "acc", "from"]
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.rstrip())
        if len(cells) >= 5 and not line.startswith("Fréchet score"):
            rows[cells[0]] = cells[1:]
    return rows


def cells_of(result: dict) -> list[str]:
    return [f"{result['fid_like']:.4g}", *(f"{result[k]:.3f}" for k in COLUMNS[1:])]


def test_the_table_shows_eval_json_else_the_saved_evaluation_else_dashes(evaluated, tmp_path, capsys):
    run, [(_, first), (saved_name, second)] = evaluated
    root = tmp_path / "runs"
    from_json = copy_run(run, root / "from-json", keep_saved=True)   # eval.json wins over the saved evaluation
    (from_json / "eval.json").write_text(json.dumps(first))
    copy_run(run, root / "from-saved", keep_saved=True)
    copy_run(run, root / "never-evaluated", keep_saved=False)

    out, _ = runs_output(capsys, root, csv_file=tmp_path / "runs.csv")
    rows = eval_rows(out)
    assert rows["from-json"] == [*cells_of(first), "eval.json"]
    assert rows["from-saved"] == [*cells_of(second), f"eval/{saved_name}"]
    assert rows["never-evaluated"] == ["—"] * 4
    assert "test split; z drawn from: prior; —: none" in out
    assert all(len(line) <= 120 for line in out.split("\n\n", 1)[1].splitlines())

    # The same reader as --csv: the same numbers in the CSV as in the table.
    with open(tmp_path / "runs.csv", newline="", encoding="utf-8") as f:
        by_name = {r["name"]: r for r in csv.DictReader(f)}
    for name, result in (("from-json", first), ("from-saved", second)):
        assert float(by_name[name]["eval: Fréchet score (judge)"]) == result["fid_like"]
        assert float(by_name[name]["eval: recall"]) == result["recall"]
    assert by_name["never-evaluated"]["eval: Fréchet score (judge)"] == ""


def test_runs_without_any_evaluation_get_no_evaluation_table(evaluated, tmp_path, capsys):
    run, _ = evaluated
    copy_run(run, tmp_path / "runs" / "plain", keep_saved=False)
    out, _ = runs_output(capsys, tmp_path / "runs")
    assert "\n\n" not in out and "Fréchet" not in out and out.splitlines()[1].startswith("plain ")


def test_a_split_that_differs_between_runs_is_said_beside_each_file(evaluated, tmp_path, capsys):
    run, [(_, first), (_, second)] = evaluated
    for name, result, split in (("on-test", first, "test"), ("on-val", second, "val")):
        copy_run(run, tmp_path / "runs" / name, keep_saved=False)
        (tmp_path / "runs" / name / "eval.json").write_text(json.dumps({**result, "split": split}))
    rows = eval_rows(runs_output(capsys, tmp_path / "runs")[0])
    assert rows["on-test"][-1] == "eval.json (test split)" and rows["on-val"][-1] == "eval.json (val split)"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


# (file, what is written, words of the run's one line): a damaged evaluation never breaks the table.
DAMAGE = [
    ("eval.json", "cut", "eval.json is not valid JSON"),
    ("eval.json", b"\xff\xfe{}", "eval.json is not valid JSON"),
    ("eval.json", "[1, 2]", "eval.json holds a JSON list, not an evaluation"),
    ("eval.json", "[" * 100_000 + "]" * 100_000, "eval.json is not valid JSON"),
    ("eval.json", _fifo, "eval.json is not a regular file"),
    ("eval.json", b" " * (2 << 20), "eval.json is 2.1 MB, more than"),
    ("eval/best-test-0123456789.json", "cut", "eval/best-test-0123456789.json is not valid JSON"),
]


@pytest.mark.parametrize(("name", "damage", "words"), DAMAGE, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(DAMAGE)])
def test_bad_inputs_a_damaged_eval_file_under_runs_is_dashes_and_one_line(evaluated, tmp_path, capsys, name, damage,
                                                                          words):
    run, [(_, first), _] = evaluated
    good = copy_run(run, tmp_path / "runs" / "good", keep_saved=False)
    (good / "eval.json").write_text(json.dumps(first))
    damaged = copy_run(run, tmp_path / "runs" / "damaged", keep_saved=False)
    path = damaged / name
    path.parent.mkdir(exist_ok=True)
    if damage == "cut":
        path.write_text(json.dumps(first)[:40])
    elif callable(damage):
        damage(path)
    elif isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        path.write_text(damage)

    out, err = runs_output(capsys, tmp_path / "runs", csv_file=tmp_path / "runs.csv")
    rows = eval_rows(out)
    assert rows["good"] == [*cells_of(first), "eval.json"]            # the other runs are untouched
    assert rows["damaged"][:4] == ["—"] * 4 and rows["damaged"][4].startswith(words), rows["damaged"]
    assert sum(line.startswith("damaged ") for line in out.splitlines()) == 2 and not err   # its two rows, no more
    assert read_eval(damaged) is None and read_run_eval(damaged).problem.startswith(words)


def test_a_damaged_saved_evaluation_newer_than_a_good_one_is_said_beside_the_numbers(evaluated, tmp_path, capsys):
    run, [_, (saved_name, second)] = evaluated
    folder = copy_run(run, tmp_path / "runs" / "mixed", keep_saved=True)
    newer = folder / "eval" / "best-test-ffffffffff.json"
    newer.write_text('{"split": "te')
    os.utime(newer, ns=(os.stat(folder / "eval" / saved_name).st_mtime_ns + 10**9,) * 2)
    rows = eval_rows(runs_output(capsys, tmp_path / "runs")[0])
    assert rows["mixed"] == [*cells_of(second), f"eval/{saved_name}; eval/best-test-ffffffffff.json is not valid JSON "
                                                "(cut short or damaged)"]


def test_numbers_past_a_float_are_left_out_not_raised_on(evaluated, tmp_path, capsys):
    """An integer of 400 digits is valid JSON; as a float it overflows (math.isfinite raised OverflowError)."""
    run, [(_, first), _] = evaluated
    folder = copy_run(run, tmp_path / "runs" / "huge", keep_saved=False)
    (folder / "eval.json").write_text(json.dumps(first).replace(f'"fid_like": {json.dumps(first["fid_like"])}',
                                                                '"fid_like": 1' + "0" * 400))
    assert "Fréchet score (judge)" not in eval_numbers(read_eval(folder))
    assert eval_numbers(read_eval(folder))["recall"] == first["recall"]
    assert eval_rows(runs_output(capsys, tmp_path / "runs")[0])["huge"] == ["—", *cells_of(first)[1:], "eval.json"]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
KEYS = st.sampled_from(["split", "samples_from", "fid_like", "precision", "recall", "conditional_accuracy",
                        "hole_score", "hole_score_per_class", "density_fid_like", "density_recall", "hole_k"])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, JSON, max_size=8) | JSON)
def test_any_json_as_eval_json_is_read_and_tabled_without_raising(data):
    with tempfile.TemporaryDirectory(prefix="vae-explorer-eval-fuzz-") as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "config.json").write_text("{}")
        (run / "metrics.jsonl").write_text("")
        (run / "eval.json").write_text(json.dumps(data))
        evaluation = read_run_eval(run)
        assert (evaluation.result is None) == (not isinstance(data, dict))
        assert all(isinstance(v, float) for v in eval_numbers(evaluation.result).values())
        hole_scores(evaluation.result)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            assert cli.main(["runs", str(run)]) == 0, err.getvalue()
        assert "Traceback" not in err.getvalue() and "evaluation" in out.getvalue()


def test_the_experiment_report_reads_eval_json_through_the_same_reader(evaluated, tmp_path):
    """core.experiments.report.read_eval is read_run_eval(saved=False): eval.json only, a FIFO refused (its own
    json.loads(read_text()) blocked on one until a writer came)."""
    from core.experiments.report import read_eval as experiment_eval

    run, [(_, first), _] = evaluated
    folder = copy_run(run, tmp_path / "run", keep_saved=True)
    assert experiment_eval(folder) is None and read_eval(folder) is not None   # a saved eval is not the experiment's
    (folder / "eval.json").write_text(json.dumps(first))
    assert experiment_eval(folder) == first
    (folder / "eval.json").unlink()
    os.mkfifo(folder / "eval.json")
    assert experiment_eval(folder) is None
