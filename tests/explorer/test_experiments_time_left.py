"""The Experiments tab's time left: the median duration of finished runs times what is left, shared by the runs at
once; between two run ends it counts down with the clock instead of jumping."""

from __future__ import annotations

import pytest

from explorer.panels.experiment_rows import RunRow, TimeLeft, describe_seconds

NOW = 1_000_000.0


def row(name, status, duration=None, started=None, progress=0.0):
    return RunRow(name, status, {}, {}, started=started, duration_s=duration, progress=progress)


def sweep(elapsed_of_running: float) -> tuple[RunRow, ...]:
    return (row("a", "done", 100.0), row("b", "done", 140.0), row("c", "done", 400.0),    # one slow outlier
            row("d", "training", started=NOW - elapsed_of_running), row("e", "waiting"), row("f", "waiting"))


def test_time_left_is_the_median_run_times_what_is_left():
    # median 140 s: 2 waiting runs x 140 + the running run's 140 - 30 s it has run
    assert TimeLeft(1).seconds(sweep(30.0), NOW) == pytest.approx(2 * 140 + 110)
    # two at once: the same work shared by two processes
    assert TimeLeft(2).seconds(sweep(30.0), NOW) == pytest.approx((2 * 140 + 110) / 2)
    # a run past the median counts as nearly done, never negative
    assert TimeLeft(1).seconds(sweep(500.0), NOW) == pytest.approx(2 * 140)
    assert TimeLeft(1).seconds((row("a", "done", 10.0), row("b", "done", 12.0)), NOW) == 0.0


def test_between_run_ends_it_counts_down_with_the_clock():
    estimator = TimeLeft(1)
    rows = sweep(30.0)                                        # the running run started 30 s before NOW
    seen = [estimator.seconds(rows, NOW + t) for t in range(0, 100, 10)]
    steps = [a - b for a, b in zip(seen, seen[1:], strict=False)]
    assert steps == pytest.approx([10.0] * len(steps))     # a steady countdown, no jumps


def test_before_any_run_finishes_it_extrapolates_the_running_runs_once_a_tenth_in():
    rows = (row("a", "training", started=NOW - 30.0, progress=0.05), row("b", "waiting"))
    assert TimeLeft(1).seconds(rows, NOW) is None
    assert describe_seconds(None).startswith("time left: estimating")
    # 20% in after 30 s: 150 s a run; 120 s left of this one and 150 s for the next
    assert TimeLeft(1).seconds(rows, NOW, progress={"a": 0.2}) == pytest.approx(270.0)
    assert describe_seconds(270.0) == "time left: about 4 min"
    assert describe_seconds(42.0) == "time left: about 42 s"
