"""Tags and a note per run (notes.json, core.runs.tags): they round-trip, show in the run's summary and its CSV row,
filter, survive a damaged file, and are written beside a live run's records without touching them or its lock.
Also: one record decoder for the run history and the follower (blank lines are not damage), and the exports' guard
for a run's own records."""

from __future__ import annotations

import csv
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.errors import UserError
from core.runs.export import check_export_file, write_runs_csv
from core.runs.history import find_runs, read_run
from core.runs.tags import NOTES_NAME, RunNotes, matches, parse_tags, read_notes, write_notes
from core.training.run_folder import LOCK_NAME, RunFolderBusy, acquire_run_folder, decode_line, follow_run

TINY = ["--epochs", "1", "--per-class", "10", "--batch-size", "32", "--set", "model.width=4", "--set",
        "model.latent_dim=2", "--set", "model.stages=1", "--set", "train.log_every=1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("tags") / "good"
    assert cli.main(["train", *TINY, "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    import shutil

    return Path(shutil.copytree(trained, tmp_path / "runs" / "good"))


def test_tags_and_note_round_trip_into_the_summary_and_csv(run, tmp_path):
    before = (run / "metrics.jsonl").read_bytes(), (run / "config.json").read_bytes()
    write_notes(run, RunNotes(parse_tags("Baseline, #beta-sweep  baseline"), "first try\nlr too high"))
    notes, problem = read_notes(run)
    assert problem == "" and notes == RunNotes(("baseline", "beta-sweep"), "first try\nlr too high")
    s = read_run(run)
    assert s.status == "completed" and s.tags == ("baseline", "beta-sweep") and s.note == "first try\nlr too high"
    assert [r.tags for r in find_runs([run.parent])] == [("baseline", "beta-sweep")]
    assert ((run / "metrics.jsonl").read_bytes(), (run / "config.json").read_bytes()) == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []    # no temporary file left
    with open(write_runs_csv([s], tmp_path / "runs.csv"), newline="", encoding="utf-8") as f:
        (row,) = csv.DictReader(f)
    assert json.loads(row["tags"]) == ["baseline", "beta-sweep"] and row["note"] == "first try\nlr too high"
    started = datetime.datetime.strptime(row["started_utc"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert abs(started.timestamp() - s.started) < 1 and row["damaged"] == "0"
    write_notes(run, RunNotes((), ""))        # cleared
    assert read_run(run).tags == () and read_run(run).note == ""


def test_the_filter_takes_words_and_tags():
    tags = ("baseline", "beta-sweep")
    assert matches("good digits completed", tags, "digits tag:base")
    assert matches("good digits completed", tags, "#beta")
    assert not matches("good digits completed", tags, "tag:mnist")
    assert not matches("good digits completed", tags, "mnist #baseline")
    assert matches("anything", (), "")


@pytest.mark.parametrize("text, message", [
    (",".join(f"t{i}" for i in range(40)), "at most 32 tags"),
    ("x" * 41, "at most 40"),
])
def test_bad_tags_are_one_line(text, message):
    with pytest.raises(UserError, match=message):
        parse_tags(text)


def test_a_damaged_notes_file_is_no_tags_and_said_and_the_run_is_still_read(run):
    for content in (b"\xff\x00 not json", b'{"tags": "abc"}', b"[1, 2]", b'{"tags": [' + b"[" * 5000 + b"]"):
        (run / NOTES_NAME).write_bytes(content)
        s = read_run(run)
        assert s.status == "completed" and s.tags == () and NOTES_NAME in s.reason
    (run / NOTES_NAME).unlink()
    os.mkfifo(run / NOTES_NAME)     # a FIFO is refused, not waited on
    s = read_run(run)
    assert s.status == "completed" and s.tags == () and "not a regular file" in s.reason


def test_notes_go_only_into_run_folders(tmp_path):
    with pytest.raises(UserError, match="not a run folder"):
        write_notes(tmp_path, RunNotes(("a",), ""))
    assert not (tmp_path / NOTES_NAME).exists()


def test_a_tag_edit_is_not_refused_by_a_live_runs_lock_and_leaves_it_alone(run):
    """Another process holds the run's lock (a run still training): tags are written all the same, and the lock and
    the records are untouched (the lock still refuses a second writer afterwards)."""
    code = ("import sys; from core.training.run_folder import acquire_run_folder\n"
            f"with acquire_run_folder({str(run)!r}, resume=True):\n"
            "    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout.readline().strip() == b"held"
        lock_before = (run / LOCK_NAME).read_bytes()
        metrics_before = (run / "metrics.jsonl").read_bytes()
        write_notes(run, RunNotes(("live",), "tagged while it ran"))
        assert read_notes(run)[0].tags == ("live",)
        assert (run / LOCK_NAME).read_bytes() == lock_before
        assert (run / "metrics.jsonl").read_bytes() == metrics_before
        with pytest.raises(RunFolderBusy):
            acquire_run_folder(run, resume=True)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert not (run / LOCK_NAME).exists()


def test_blank_lines_are_not_damage_for_the_history_or_the_follower(run):
    """One decoder (run_folder.decode_line) for both readers: a blank line is skipped unsaid, damage is counted."""
    assert decode_line(b"") == (None, "") and decode_line(b"  \r") == (None, "")
    assert decode_line(None)[1].startswith("longer than") and decode_line(b"{x")[1] == "not a JSON record"
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (run / "metrics.jsonl").write_bytes(b"".join([lines[0], b"\n", b"   \n", *lines[1:3], b"garbage\n", *lines[3:]]))
    s = read_run(run)
    assert s.status == "completed" and s.damaged == 1 and "line 6: not a JSON record" in s.reason
    warnings = [e.message for e in follow_run(run, models=False) if getattr(e, "level", "") == "warning"]
    assert warnings == ["skipped line 6 of metrics.jsonl: not a JSON record"]


def test_a_run_of_only_damaged_records_counts_them(run):
    (run / "metrics.jsonl").write_bytes(b"garbage\n{\"type\": \"epoch\"}\n")
    s = read_run(run)
    assert s.status == "unreadable" and s.damaged == 2


@pytest.mark.parametrize("name", ["metrics.jsonl", "config.json", "samples/x.csv", "checkpoints/r.html"])
def test_exports_refuse_a_runs_own_records_first(run, name):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="would overwrite the records of the run folder"):
        check_export_file(run / name, what="Export CSV:", suffixes=(".csv",))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_exports_say_a_wrong_suffix_elsewhere(run, tmp_path):
    with pytest.raises(UserError, match=r"must end in \.csv"):
        check_export_file(tmp_path / "runs.txt", what="Export CSV:", suffixes=(".csv",))
    assert check_export_file(run / "runs.csv", what="Export CSV:", suffixes=(".csv",)) == run / "runs.csv"
