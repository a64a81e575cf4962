"""A run evaluated with `vae-explorer eval CHECKPOINT --save` (no experiment eval.json) shows its numbers in the Runs
tab's comparison: the newest saved test-split evaluation, read by core.runs.evaluation. Two tiny real runs."""

from __future__ import annotations

import json

from core.cli.main import main

TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--quiet"]


def test_a_saved_evaluation_shows_in_the_comparison(compared_runs, tmp_path):
    runs = [tmp_path / "runs" / name for name in ("a", "b")]
    for i, run in enumerate(runs):
        assert main(["train", *TINY, "--seed", str(i), "--out", str(run)]) == 0
    ckpt = runs[0] / "checkpoints" / "best.safetensors"
    assert main(["eval", str(ckpt), "--quiet", "--iwae-k", "0", "--samples-per-class", "5", "--from", "both",
                 "--save"]) == 0
    (saved,) = (runs[0] / "eval").glob("*.json")
    result = json.loads(saved.read_text())

    _, table, rows, columns = compared_runs(tmp_path / "runs", runs, "test: Fréchet score (judge)")
    a, b = columns.index("a"), columns.index("b")
    for label, key in (("test: Fréchet score (judge)", "fid_like"), ("test: recall, z from density", "density_recall")):
        row = rows.index(label)
        assert table.item(row, a).text() == f"{result[key]:.4g}"
        assert table.item(row, b) is None or table.item(row, b).text() in ("", "—")   # b was never evaluated
