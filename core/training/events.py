"""The small frozen events that long work yields (training, evaluation, projection, sampling).

Only copies cross threads: events hold Python numbers, strings and numpy arrays, never live tensors. A subset of
events is also written to a run folder's `metrics.jsonl` (one JSON object per line) so that another process, the GUI
following a run folder, can rebuild the same events: `to_record` and `from_record` are that mapping.

Each record also says when it was written (`"time"`, epoch seconds), so that a reader replaying a run's history shows
each line at its own time. A recorded event carries that time as its `time` field: None for an event made in this
process (it happens now), the record's time for one rebuilt from a line (absent in older run folders: None again).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Union

import msgspec
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
    # The model optimiser's gradient norm before clipping, mean over the window's applied steps (None: a run record
    # from before it was logged), and the steps skipped so far in the run (non-finite, or above train.grad_skip).
    grad_norm: float | None = None
    skipped_steps: int = 0
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


class RecordError(ValueError):
    """A run record of a known type whose fields do not have the types and ranges its event needs; the message says
    which field and why (e.g. "epoch record: Expected `int`, got `str` - at `$.epoch`")."""


def decode_record(record: Any) -> Event | None:
    """Rebuild an event from a metrics.jsonl record (a parsed line), each field decoded by its declared type and
    range (msgspec): None for a record of an unknown type (a newer writer); RecordError for a known type with a
    missing, wrong-typed, out-of-range or non-finite field. Metric values may be NaN or infinite (what a diverging
    run measured); counters, times and rates may not. A time that is not a plausible epoch-seconds number is no time
    (None), as in run folders older than record times."""
    if not isinstance(record, Mapping):
        raise RecordError("not a JSON object")
    name = record.get("type")
    spec = _SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        return None
    values = {k: v for k, v in record.items() if k not in ("type", "time")}
    try:
        decoded = msgspec.convert(values, spec, strict=True)
    except msgspec.ValidationError as e:
        raise RecordError(f"{name} record: {e}") from None
    fields_ = msgspec.structs.asdict(decoded)
    when = record.get("time")
    fields_["time"] = (float(when) if type(when) in (int, float) and 0 <= when <= _MAX_TIME else None)
    if spec is _Epoch and fields_["kl_per_dim"] is not None:
        fields_["kl_per_dim"] = np.asarray(fields_["kl_per_dim"], dtype=np.float32)
    return _RECORDED[name](**fields_)


def from_record(record: Any) -> Event | None:
    """`decode_record`, with None for a record it cannot read as well (followers skip those)."""
    try:
        return decode_record(record)
    except RecordError:
        return None


# The typed form of each record (what decode_record checks). Unknown fields are ignored: a newer writer's extra ones.
_MAX_TIME = 1e11                                               # epoch seconds: the year 5138
_Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]          # steps, epochs: whole, exactly a float too
_Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]   # NaN and inf fail both
_Rate = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]
_Text = Annotated[str, msgspec.Meta(max_length=1_000_000)]
_Metrics = Annotated[dict[str, float], msgspec.Meta(max_length=10_000)]


class _Start(msgspec.Struct):
    config: dict[str, Any]
    meta: dict[str, Any]
    device: _Text
    total_steps: _Count
    steps_per_epoch: _Count
    run_dir: _Text | None = None
    start_step: _Count = 0


class _Step(msgspec.Struct):
    step: _Count
    epoch: _Count
    metrics: _Metrics
    lr: _Rate
    images_per_s: _Rate
    eta_s: _Finite
    progress: _Finite
    grad_norm: float | None = None     # NaN/inf allowed, like a metric; absent in older logs
    skipped_steps: _Count = 0


class _Epoch(msgspec.Struct):
    epoch: _Count
    step: _Count
    train: _Metrics
    val: _Metrics
    is_best: bool
    elapsed_s: _Rate
    kl_per_dim: Annotated[list[float], msgspec.Meta(max_length=1_000_000)] | None = None


class _Checkpoint(msgspec.Struct):
    path: _Text
    step: _Count
    epoch: _Count
    tag: _Text


class _Log(msgspec.Struct):
    level: _Text
    message: _Text
    step: _Count = 0


class _End(msgspec.Struct):
    status: _Text
    reason: _Text
    step: _Count
    epoch: _Count
    best_val: _Finite | None = None
    last_checkpoint: _Text | None = None


_SPECS: dict[str, type] = {"start": _Start, "step": _Step, "epoch": _Epoch, "checkpoint": _Checkpoint, "log": _Log,
                           "end": _End}
