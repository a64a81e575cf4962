"""The Experiments tab's table, as the panel fills it (ExperimentReader.read on a folder, then show_snapshot): a run
whose eval.json is cut short reads "damaged" with the warning icon in an "evaluation" column, the run history's one
line as the tooltip of its evaluation cells (as the Runs tab's comparison); a valid run has its numbers and no mark,
and once the file is whole again the column and the tooltips go."""

from __future__ import annotations

import json

from core.runs.evaluation import read_run_eval
from explorer.panels.experiment_rows import ExperimentReader
from explorer.panels.experiment_table import ExperimentTable

VALID = json.dumps({"split": "test", "kl": 12.0, "recon": 80.0, "elbo": -92.0, "fid_like": 12.5, "precision": 0.875})


def item(table: ExperimentTable, row: int, column: str):
    return table.table.item(row, table.columns().index(column))


def test_a_damaged_eval_json_is_marked_in_the_experiment_table(qtbot, finished_run, tmp_path):
    finished_run(tmp_path / "beta-0.5", VALID)
    cut = finished_run(tmp_path / "beta-2", VALID[:30])
    problem = read_run_eval(cut).problem
    assert problem == "eval.json is not valid JSON (cut short or damaged)"
    table = ExperimentTable()
    qtbot.addWidget(table)
    reader = ExperimentReader()
    table.show_snapshot(reader.read(tmp_path, {"beta-0.5": {}, "beta-2": {}}))

    assert "evaluation" in table.columns()
    assert table.columns().index("evaluation") < table.columns().index("ELBO")
    damaged, fine = item(table, 1, "evaluation"), item(table, 0, "evaluation")
    assert damaged.text() == "damaged" and damaged.toolTip() == problem and not damaged.icon().isNull()
    assert table.text(1, "status") == "trained"              # trained; its evaluation is what is damaged
    assert table.text(1, "ELBO") == "—" and item(table, 1, "ELBO").toolTip() == problem
    assert fine.text() == "" and fine.toolTip() == "" and fine.icon().isNull()
    assert table.text(0, "status") == "done" and table.text(0, "ELBO") == "-92"
    assert item(table, 0, "ELBO").toolTip() == ""
    assert item(table, 1, "duration").toolTip() == ""
    assert [name for name, _, _ in table.scatter_points()] == ["beta-0.5"]     # no point for the damaged run

    (cut / "eval.json").write_text(VALID + " ")              # whole again (another size: the reader reads it again)
    table.show_snapshot(reader.read(tmp_path, {"beta-0.5": {}, "beta-2": {}}))
    assert "evaluation" not in table.columns()
    assert table.text(1, "status") == "done" and table.text(1, "ELBO") == "-92"
    assert all(table.table.item(1, j).toolTip() == "" and table.table.item(1, j).icon().isNull()
               for j in range(table.table.columnCount()))
