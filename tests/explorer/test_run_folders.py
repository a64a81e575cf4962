"""The folders of runs: the Runs tab and the Experiments tab each write their own QSettings key (explorer/settings.py);
the Runs tab lists the folders of both; the key both once shared ("runs/folders") becomes the Runs tab's own on the
first read, so a user who upgrades loses no folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from core.paths import runs_dir
from explorer.panels.runs import RunsPanel
from explorer.settings import (
    EXPERIMENT_FOLDERS,
    RUNS_TAB_FOLDERS,
    SHARED_RUNS_FOLDERS,
    add_experiment_folder,
    experiment_folders,
    runs_tab_folders,
)
from explorer.state import AppState


@pytest.fixture
def settings():
    """The test's own folders only (another test may have added its own), and none left for the next test."""
    s = QSettings()
    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS, SHARED_RUNS_FOLDERS):
        s.remove(key)
    yield s
    for key in (RUNS_TAB_FOLDERS, EXPERIMENT_FOLDERS, SHARED_RUNS_FOLDERS):
        s.remove(key)


def _folder_with_a_run(root: Path, name: str) -> Path:
    """A folder holding one run folder (a metrics.jsonl): the Runs tab lists that run."""
    (root / name / f"{name}-run").mkdir(parents=True)
    (root / name / f"{name}-run" / "metrics.jsonl").write_text("")
    return root / name


def _listed(qtbot, panel: RunsPanel, names: set[str]) -> None:
    """The panel's next read of its folders lists the runs `names` (a read still running was of older folders)."""
    qtbot.waitUntil(lambda: not panel.tasks.busy("runs"), timeout=20_000)
    panel.refresh()
    qtbot.waitUntil(lambda: {r.name for r in panel.runs} >= names, timeout=20_000)


def test_the_old_shared_key_becomes_the_runs_tabs_own_and_nothing_is_lost(qtbot, tmp_path, settings):
    added, experiment = _folder_with_a_run(tmp_path, "added"), _folder_with_a_run(tmp_path, "sweep")
    settings.setValue(SHARED_RUNS_FOLDERS, [str(added), str(experiment)])   # as both tabs left it
    panel = RunsPanel(AppState())
    qtbot.addWidget(panel)
    assert panel.folders() == [str(runs_dir()), str(added), str(experiment)]
    _listed(qtbot, panel, {"added-run", "sweep-run"})
    assert not settings.contains(SHARED_RUNS_FOLDERS)                       # read once, then gone
    assert runs_tab_folders(settings) == [str(added), str(experiment)]
    assert experiment_folders(settings) == []
    panel.shutdown()


def test_an_old_single_folder_value_is_kept_too(settings, tmp_path):
    settings.setValue(SHARED_RUNS_FOLDERS, str(tmp_path))    # QSettings reads a one-item list back as a string
    assert runs_tab_folders(settings) == [str(tmp_path)]
    assert runs_tab_folders(settings) == [str(tmp_path)]     # the second read finds it under the new key


def test_each_tab_writes_its_own_key_and_the_runs_tab_lists_both(qtbot, tmp_path, settings):
    added, experiment = _folder_with_a_run(tmp_path, "added"), _folder_with_a_run(tmp_path, "sweep")
    panel = RunsPanel(AppState())
    qtbot.addWidget(panel)
    panel.add_folder(str(added))
    add_experiment_folder(QSettings(), str(experiment))      # what the Experiments tab does with its output folder
    add_experiment_folder(QSettings(), str(experiment))      # a second start of the same experiment: listed once
    assert settings.value(RUNS_TAB_FOLDERS) in ([str(added)], str(added))
    assert experiment_folders(settings) == [str(experiment)]
    assert panel.folders() == [str(runs_dir()), str(added), str(experiment)]
    _listed(qtbot, panel, {"added-run", "sweep-run"})
    # adding in the Runs tab never touches the experiments' list (and adding a folder again lists it once)
    panel.add_folder(str(experiment))
    panel.add_folder(str(added))
    assert runs_tab_folders(settings) == [str(experiment), str(added)]
    assert experiment_folders(settings) == [str(experiment)]
    assert panel.folders() == [str(runs_dir()), str(experiment), str(added)]
    panel.shutdown()
