"""Events survive the metrics.jsonl round trip that run-folder following relies on."""

import json

import numpy as np

from core.training.events import EpochSummary, Preview, RunEnded, StepMetrics, from_record, to_record


def test_recorded_events_round_trip_through_json():
    events = [
        StepMetrics(step=10, epoch=1, metrics={"loss": 1.5, "kl": 0.25}, lr=1e-3, images_per_s=900.0, eta_s=3.0,
                    progress=0.1),
        RunEnded(status="stopped", reason="user", step=10, epoch=1, best_val=None, last_checkpoint="x"),
    ]
    for event in events:
        line = json.dumps(to_record(event))
        assert from_record(json.loads(line)) == event


def test_epoch_summary_keeps_kl_per_dimension():
    event = EpochSummary(epoch=2, step=40, train={"loss": 3.0}, val={"loss": 3.5}, is_best=True, elapsed_s=1.0,
                         kl_per_dim=np.array([0.5, 0.0, 2.25], dtype=np.float32))
    back = from_record(json.loads(json.dumps(to_record(event))))
    np.testing.assert_allclose(back.kl_per_dim, event.kl_per_dim)
    assert back.val == {"loss": 3.5} and back.is_best


def test_previews_are_not_logged_and_unknown_records_are_ignored():
    preview = Preview(epoch=1, step=1, samples=np.zeros((1, 2, 2, 1), np.uint8), sample_labels=np.zeros(1, np.int64))
    assert to_record(preview) is None
    assert from_record({"type": "from-a-newer-version", "x": 1}) is None
    assert from_record({"type": "step", "step": 1}) is None  # incomplete line: skipped, not a crash
