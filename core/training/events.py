"""The small frozen events that long work yields (training, evaluation, projection, sampling).

Only copies cross threads: events hold Python numbers, strings and numpy arrays, never live tensors. A subset of
events is also written to a run folder's `metrics.jsonl` (one JSON object per line) so that another process, the GUI
following a run folder, can rebuild the same events: `to_record` and `from_record` are that mapping.

Each record also says when it was written (`"time"`, epoch seconds), so that a reader replaying a run's history shows
each line at its own time. A recorded event carries that time as its `time` field: None for an event made in this
process (it happens now), the record's time for one rebuilt from a line (absent in older run folders: None again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union

import numpy as np


@dataclass(frozen=True)
class RunStarted:
    run_dir: str | None
    config: Mapping[str, Any]          # Config.to_dict()
    meta: Mapping[str, Any]            # DatasetMeta.to_dict()
    device: str                        # e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100"
    total_steps: int
    steps_per_epoch: int
    start_step: int = 0                # > 0 when resumed
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class StepMetrics:
    step: int
    epoch: int                         # 1-based epoch this step belongs to
    metrics: Mapping[str, float]       # loss, recon, kl, ... (per image, nats), averaged since the last event
    lr: float
    images_per_s: float
    eta_s: float
    progress: float                    # 0..1 of the whole run
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class EpochSummary:
    epoch: int
    step: int
    train: Mapping[str, float]
    val: Mapping[str, float]
    is_best: bool
    elapsed_s: float
    kl_per_dim: np.ndarray | None = None   # float32 (latent_dim,), validation KL per dimension (VAE only)
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class Preview:
    epoch: int
    step: int
    samples: np.ndarray                # uint8 (K, H, W, C): class-conditional samples
    sample_labels: np.ndarray          # int64 (K,)
    originals: np.ndarray | None = None        # uint8 (M, H, W, C) validation images
    reconstructions: np.ndarray | None = None  # uint8 (M, H, W, C)


@dataclass(frozen=True)
class ModelSnapshot:
    """A copy of the weights (EMA when there is one) that panels may decode with on their own thread."""

    epoch: int
    step: int
    config: Mapping[str, Any]
    meta: Mapping[str, Any]
    state: Mapping[str, np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    step: int
    epoch: int
    tag: str                           # "last", "best" or "interrupt"
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class LogMessage:
    level: str                         # "info", "warning" or "error"
    message: str
    step: int = 0
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class RunEnded:
    status: str                        # "completed", "early_stopped", "stopped" or "failed"
    reason: str
    step: int
    epoch: int
    best_val: float | None = None
    last_checkpoint: str | None = None
    time: float | None = field(default=None, compare=False)   # when it was recorded (epoch s); None: now


@dataclass(frozen=True)
class Progress:
    """Progress of any other long task (encoding, UMAP, evaluation, sampling)."""

    task: str
    done: int
    total: int
    message: str = ""


Event = Union[RunStarted, StepMetrics, EpochSummary, Preview, ModelSnapshot, CheckpointSaved, LogMessage, RunEnded,
              Progress]

# Events written to metrics.jsonl, by their "type" field. Previews and snapshots are not: they go to samples/ and
# checkpoints/ as files.
_RECORDED: dict[str, type] = {"start": RunStarted, "step": StepMetrics, "epoch": EpochSummary,
                              "checkpoint": CheckpointSaved, "log": LogMessage, "end": RunEnded}
_TYPE_OF = {cls: name for name, cls in _RECORDED.items()}


def to_record(event: Event) -> dict[str, Any] | None:
    """The JSON-ready dict for metrics.jsonl, or None for events that are not logged there. Its "time" is the event's
    own time when it has one (it was read from a record), else the time of this call: when the record is written."""
    name = _TYPE_OF.get(type(event))
    if name is None:
        return None
    record = {"type": name, **asdict(event)}
    if record["time"] is None:
        record["time"] = round(time.time(), 3)
    if isinstance(event, EpochSummary) and event.kl_per_dim is not None:
        record["kl_per_dim"] = [round(float(v), 6) for v in event.kl_per_dim]
    return record


def from_record(record: Mapping[str, Any]) -> Event | None:
    """Rebuild an event from a metrics.jsonl line; None for a line of an unknown type (a newer writer) or one whose
    fields do not have the types the event needs (a damaged or hand-edited line): followers skip those."""
    if not isinstance(record, Mapping):
        return None
    cls = _RECORDED.get(str(record.get("type")))
    if cls is None:
        return None
    values = {k: v for k, v in record.items() if k != "type" and k in cls.__dataclass_fields__}
    if not _plausible(cls, values):
        return None
    when = values.get("time")   # the line's own time, or None (an older writer, or not a number): "now"
    values["time"] = (float(when) if isinstance(when, (int, float)) and not isinstance(when, bool)
                      and math.isfinite(when) else None)
    if cls is EpochSummary and values.get("kl_per_dim") is not None:
        values["kl_per_dim"] = np.asarray(values["kl_per_dim"], dtype=np.float32)
    try:
        return cls(**values)
    except (TypeError, ValueError):
        return None


_NUMBER = {"int", "float"}


def _plausible(cls: type, values: dict[str, Any]) -> bool:
    """The numeric, text and mapping fields hold numbers, text and mappings (annotations are strings here)."""
    for f in fields(cls):
        if f.name not in values or f.name == "time":
            continue
        v, kind = values[f.name], str(f.type)
        if kind in _NUMBER and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return False
        if kind == "str" and not isinstance(v, str):
            return False
        if kind.startswith("Mapping[str, float]") and not (isinstance(v, Mapping) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())):
            return False
    return True
