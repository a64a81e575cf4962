"""A run evaluated with `vae-explorer eval CHECKPOINT --save` (no experiment eval.json) shows its numbers in the Runs
tab's comparison: the newest saved test-split evaluation, read by core.runs.evaluation. Two tiny real runs."""

from __future__ import annotations

import json
from pathlib import Path

from core.cli.main import main
from explorer.state import AppState

TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--quiet"]


def test_a_saved_evaluation_shows_in_the_comparison(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from explorer.panels.runs import RunsPanel
    from explorer.settings import EXPERIMENT_FOLDERS, RUNS_TAB_FOLDERS

    runs = [tmp_path / "runs" / name for name in ("a", "b")]
    for i, run in enumerate(runs):
        assert main(["train", *TINY, "--seed", str(i), "--out", str(run)]) == 0
    ckpt = runs[0] / "checkpoints" / "best.safetensors"
    assert main(["eval", str(ckpt), "--quiet", "--iwae-k", "0", "--samples-per-class", "5", "--from", "both",
                 "--save"]) == 0
    (saved,) = (runs[0] / "eval").glob("*.json")
    result = json.loads(saved.read_text())

    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
        QSettings().remove(key)
    panel = RunsPanel(AppState())
    qtbot.addWidget(panel)
    panel.add_folder(str(tmp_path / "runs"))
    panel.show()
    qtbot.waitUntil(lambda: {Path(r.path) for r in panel.runs} >= set(runs), timeout=60_000)
    panel.select_paths(runs)
    panel.compare_selected()
    table = panel.compare_view.metrics_table

    def rows() -> list[str]:
        return [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]

    qtbot.waitUntil(lambda: "test: Fréchet score (judge)" in rows(), timeout=30_000)
    columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    a, b = columns.index("a"), columns.index("b")
    for label, key in (("test: Fréchet score (judge)", "fid_like"), ("test: recall, z from density", "density_recall")):
        row = rows().index(label)
        assert table.item(row, a).text() == f"{result[key]:.4g}"
        assert table.item(row, b) is None or table.item(row, b).text() in ("", "—")   # b was never evaluated
    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS):
        QSettings().remove(key)
    panel.shutdown()
