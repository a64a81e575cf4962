"""Fuzzing run records (hypothesis): whatever a metrics.jsonl line holds, decoding it gives an event or a RecordError
(never another exception), and reading, listing, plotting, following and tabling the run never raise."""

from __future__ import annotations

import io
import json
import math
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cli
from core.config import Config
from core.runs.history import STATUSES, find_runs, load_series, read_run
from core.training.events import (
    CheckpointSaved,
    EpochSummary,
    LogMessage,
    RecordError,
    RunEnded,
    RunStarted,
    StepMetrics,
    decode_record,
    to_record,
)
from core.training.run_folder import follow_run

GOOD = [to_record(e) for e in (
    RunStarted("/runs/x", Config().to_dict(), {"name": "digits", "class_names": ["0", "1"], "channels": 1,
                                                "image_size": 8}, "cpu", 10, 5),
    StepMetrics(2, 1, {"loss": 3.0, "kl": 0.5}, 1e-3, 100.0, 4.0, 0.2),
    LogMessage("info", "hello", 2),
    EpochSummary(1, 5, {"loss": 2.5}, {"loss": 2.6, "elbo": -2.6}, True, 1.5, np.array([0.1, 0.2], np.float32)),
    CheckpointSaved("/runs/x/checkpoints/last.safetensors", 5, 1, "last"),
    RunEnded("completed", "done", 10, 2, -2.6, "/runs/x/checkpoints/last.safetensors"),
)]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def damaged_record(draw):
    """A good record of some type with some fields replaced, dropped or added; or any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    record = dict(draw(st.sampled_from(GOOD)))
    for name in draw(st.lists(st.sampled_from(sorted(set(record) - {"type"}) + ["extra", "type"]), max_size=3)):
        action = draw(st.integers(0, 2))
        if action == 0:
            record.pop(name, None)
        else:
            record[name] = draw(json_values)
    return record


@settings(max_examples=400, deadline=None, database=None)
@given(damaged_record())
def test_decoding_gives_an_event_or_a_record_error(record):
    try:
        event = decode_record(record)
    except RecordError as e:
        assert str(e)
        return
    if event is not None and getattr(event, "time", None) is not None:
        assert 0 <= event.time <= 1e11
    for name in ("step", "epoch"):
        value = getattr(event, name, 0)
        assert isinstance(value, int) and 0 <= value <= 2**53
    if isinstance(event, RunEnded) and event.best_val is not None:
        assert math.isfinite(event.best_val)


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(damaged_record(), min_size=1, max_size=4), st.integers(0, len(GOOD)),
       st.sampled_from([b"\n", b""]))
def test_a_run_with_damaged_records_is_read_listed_followed_and_tabled(records, where, tail):
    with tempfile.TemporaryDirectory(prefix="vae-explorer-fuzz-") as tmp:
        root = Path(tmp)
        run, other = root / "damaged", root / "other"
        for folder in (run, other):
            folder.mkdir()
            (folder / "config.json").write_text(Config().to_json())
        lines = [json.dumps(r).encode() for r in GOOD]
        (other / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        lines[where:where] = [json.dumps(r).encode() for r in records]
        (run / "metrics.jsonl").write_bytes(b"\n".join(lines) + tail)

        summary = read_run(run)
        assert summary.status in STATUSES
        assert {r.name for r in find_runs([root])} == {"damaged", "other"}
        for series in load_series(run).values():
            assert len(series.step) == len(series.value)
        followed = list(follow_run(run, poll_s=0.0, models=False, should_stop=lambda: True))
        assert all(e is not None for e in followed)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main(["runs", str(root), "--csv", str(root / "runs.csv")])
        assert code == 0 and "Traceback" not in err.getvalue(), err.getvalue()
        assert "damaged" in out.getvalue() and "other" in out.getvalue()
        shutil.rmtree(run)
