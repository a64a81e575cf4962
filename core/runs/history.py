"""Run folders as a history: what each run is (a RunSummary), its curves (Series) and the settings that differ.

A run folder is what the Trainer writes: `config.json`, `metrics.jsonl` (one event record per line, the source of
truth), `checkpoints/`, `samples/`. Reading one never raises: a folder that cannot be read is a summary with status
"unreadable" and a reason, and a damaged line is skipped and counted in the reason (and in `damaged`). A blank line
and a half-written last line are not damage (the last: a run being written). Lines are decoded by the follower's
decoder (`core.training.run_folder.decode_line`), so the Runs tab and a followed run agree on what is damaged. A
summary also carries the user's tags and note (`notes.json`, core.runs.tags).
Runs are listed from many folders at once (the user's runs folder, a shared disk), so a
summary reads the file once and parses only the lines it needs: step records, the bulk of the file, are only
recognised by their first bytes, and the newest of them is parsed.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.config import Config
from core.errors import UserError
from core.files import FileRefused, open_regular, read_regular
from core.runs.tags import read_notes
from core.training.events import EpochSummary, RunEnded, RunStarted, StepMetrics
from core.training.run_folder import MAX_RECORD_BYTES, decode_line

STATUSES = ("running", "completed", "stopped", "failed", "early_stopped", "unfinished", "unreadable")
_ENDED = {"completed", "stopped", "failed", "early_stopped"}
_STEP_PREFIX = b'{"type": "step"'   # json.dumps of to_record's dict: "type" comes first


@dataclass(frozen=True)
class RunSummary:
    path: Path
    name: str
    started: float | None          # epoch seconds: the first record's time (older folders: config.json's mtime)
    updated: float | None          # the newest record's time (older folders: metrics.jsonl's mtime)
    kind: str | None               # "vae", "diffusion"
    dataset: str | None
    subset: str                    # e.g. "classes 0,1; 20 per class"; "" when all the data
    status: str                    # one of STATUSES
    epochs_done: int
    epochs_total: int | None
    step: int
    best_val: float | None         # the trainer's best validation score (ELBO for a VAE, else the loss)
    headline: dict[str, float]     # the last epoch's validation metrics
    config: dict | None            # Config.to_dict() form (JSON types)
    reason: str                    # why unreadable, or what was skipped; the end record's reason otherwise
    damaged: int = 0               # lines of metrics.jsonl skipped as unreadable (said in `reason`)
    tags: tuple[str, ...] = ()     # the user's tags and note (notes.json, core.runs.tags)
    note: str = ""


@dataclass
class Series:
    name: str                      # "loss", "kl", "lr" ... (step records) or "val loss", "val elbo" ... (epochs)
    step: np.ndarray               # int64
    epoch: np.ndarray              # int64
    time: np.ndarray               # float64 epoch seconds (NaN where the record has no time)
    value: np.ndarray              # float64


# ------------------------------------------------------------------------------------------------ reading files
MAX_METRICS_BYTES = 1 << 30     # 1 GiB: ~4 million records; a bigger metrics.jsonl is not a run's (a 10 GB sparse file)
MAX_CONFIG_BYTES = 1 << 20      # config.json is a few kB
MAX_LINE_BYTES = MAX_RECORD_BYTES   # the longest record (a start record with its config) is a few kB
_CHUNK = 1 << 20


class _Lines:
    """The complete lines of a file read in chunks (memory stays bounded whatever its size): None for a line longer
    than MAX_LINE_BYTES (not kept); after the iteration, `tail` is the unfinished last line (one being written)."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self.f, self.limit, self.tail, self.read = f, limit, b"", 0

    def __iter__(self) -> Iterator[bytes | None]:
        buf, skipping = b"", False   # skipping: inside a line already too long, until its newline
        while self.read <= MAX_METRICS_BYTES:   # the file may grow while it is read: stop at the cap all the same
            chunk = self.f.read(_CHUNK)
            if not chunk:
                break
            self.read += len(chunk)
            if skipping:
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                yield None
                chunk, skipping = chunk[nl + 1:], False
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                yield line if len(line) <= self.limit else None
            if len(buf) > self.limit:
                buf, skipping = b"", True
        self.tail = b"(a line too long to keep)" if skipping else buf


def _normal_config(raw: Any) -> dict | None:
    """A config dict in Config.to_dict() form with every field (older configs get today's defaults), or the raw dict
    when it has the three sections but this version cannot build it (a newer writer); None when it is not a config."""
    if not isinstance(raw, dict):
        return None
    try:
        return json.loads(Config.from_dict(raw).to_json())
    except (UserError, TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError):
        pass
    return raw if all(isinstance(raw.get(s), dict) for s in ("data", "model", "train")) else None


def _read_config(path: Path) -> tuple[dict | None, str]:
    """config.json as a dict, or None and why not."""
    try:
        raw = json.loads(read_regular(path / "config.json", MAX_CONFIG_BYTES, within=path))
    except FileNotFoundError:
        return None, "no config.json"
    except OSError as e:
        return None, f"cannot read config.json ({e.strerror or type(e).__name__})"
    except FileRefused as e:
        return None, str(e)
    except (ValueError, RecursionError):
        return None, "config.json is not JSON"
    config = _normal_config(raw)
    return config, "" if config is not None else "config.json is not a vae-explorer configuration"


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


@dataclass
class _Scan:
    """What a summary needs from metrics.jsonl."""

    first_time: float | None = None
    last_time: float | None = None
    config: dict | None = None          # the newest start record's
    last_epoch: EpochSummary | None = None
    best: float | None = None
    end: RunEnded | None = None         # the newest record when it is an end record
    step: int = 0
    records: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)   # the first few skipped lines: "line 7: why"

    def skip(self, number: int, why: str) -> None:
        self.skipped += 1
        if len(self.problems) < 3:
            self.problems.append(f"line {number}: {why}")

    def add(self, event: Any) -> None:
        self.records += 1
        when = getattr(event, "time", None)
        if when is not None:
            self.first_time = when if self.first_time is None else self.first_time
            self.last_time = when
        self.end = event if isinstance(event, RunEnded) else None
        step = getattr(event, "step", None)
        if isinstance(step, int):
            self.step = max(self.step, step)
        if isinstance(event, RunStarted):
            self.config = _normal_config(dict(event.config)) or self.config
        elif isinstance(event, EpochSummary):
            self.last_epoch = event
            if event.is_best:
                scores = event.val or event.train
                score = scores.get("elbo", scores.get("loss"))
                self.best = float(score) if score is not None else self.best
        elif isinstance(event, RunEnded) and event.best_val is not None:
            self.best = float(event.best_val)


def _scan(lines: Iterable[bytes | None]) -> _Scan:
    scan = _Scan()
    last_step: tuple[int, bytes] | None = None   # parsed at the end: only the newest step record matters here
    for number, line in enumerate(lines, 1):
        if line is not None and line.startswith(_STEP_PREFIX):
            last_step = (number, line)
            scan.end = None
            continue
        event, why = decode_line(line)
        if event is None:
            if why:       # "": a blank line, not damage
                scan.skip(number, why)
            continue
        scan.add(event)
    if last_step is not None:
        event, why = decode_line(last_step[1])
        if isinstance(event, StepMetrics):
            scan.records += 1
            scan.step = max(scan.step, event.step)
            if event.time is not None and (scan.last_time is None or event.time > scan.last_time):
                scan.last_time = event.time
            scan.first_time = scan.first_time if scan.first_time is not None else event.time
        else:
            scan.skip(last_step[0], why or "not a step record")
    return scan


def _subset(config: dict | None) -> str:
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        return ""
    parts = []
    classes = data.get("classes") or ()
    if isinstance(classes, (list, tuple)) and classes:
        parts.append("classes " + ",".join(str(c) for c in classes))
    per_class = data.get("per_class")
    if isinstance(per_class, int) and per_class > 0:
        parts.append(f"{per_class} per class")
    return "; ".join(parts)


def _section_value(config: dict | None, section: str, name: str) -> Any:
    part = config.get(section) if isinstance(config, dict) else None
    return part.get(name) if isinstance(part, dict) else None


# ------------------------------------------------------------------------------------------------ summaries
def _unreadable(path: Path, reason: str, **known: Any) -> RunSummary:
    fields = {"started": None, "updated": None, "kind": None, "dataset": None, "subset": "", "epochs_done": 0,
              "epochs_total": None, "step": 0, "best_val": None, "headline": {}, "config": None}
    fields.update(known)
    if fields["updated"] is None:   # when it was last touched, to sort it among the others
        times = [_mtime(p) for p in (path / "metrics.jsonl", path / "config.json", path)]
        fields["updated"] = max((t for t in times if t is not None), default=None)
    return RunSummary(path=path, name=path.name, status="unreadable", reason=reason, **fields)


def read_run(path: str | Path, *, running_within_s: float = 120.0) -> RunSummary:
    """Summarise one run folder. Never raises for a bad folder: it comes back "unreadable" with the reason.

    A run without an end record is "running" when its files were written in the last `running_within_s` seconds,
    else "unfinished" (killed, or its machine went away). A resumed run appends after its earlier end record, so only
    an end record that is the newest record ends a run."""
    path = Path(path)
    try:
        summary = _read_run(path, running_within_s)
        if not is_run_folder(path):    # not a run: no tags either
            return summary
        notes, problem = read_notes(path)
    except Exception as e:  # noqa: BLE001 - the promise of this module: one folder, however damaged, is a row saying
        # why (here: what went wrong, e.g. MemoryError), never an exception that hides every other run
        return _unreadable(path, f"cannot be read ({type(e).__name__}: {str(e)[:200]})")
    reason = "; ".join(r for r in (summary.reason, problem) if r)
    return replace(summary, tags=notes.tags, note=notes.note, reason=reason)


def _read_run(path: Path, running_within_s: float) -> RunSummary:
    try:
        if not path.is_dir():
            return _unreadable(path, "not a folder" if path.exists() else "no such folder")
        metrics = path / "metrics.jsonl"
        has_metrics = metrics.exists() or metrics.is_symlink()
        has_config = (path / "config.json").exists() or (path / "config.json").is_symlink()
    except OSError as e:
        return _unreadable(path, f"cannot read the folder ({e.strerror or type(e).__name__})")
    if not has_metrics and not has_config:
        return _unreadable(path, "not a run folder (no metrics.jsonl or config.json)")
    config, config_problem = _read_config(path)
    notes = []
    scan, tail = _Scan(), b""
    if has_metrics:
        try:
            with open_regular(metrics, MAX_METRICS_BYTES, within=path) as f:
                lines = _Lines(f, MAX_LINE_BYTES)
                scan = _scan(lines)
                tail = lines.tail
        except OSError as e:
            return _unreadable(path, f"cannot read metrics.jsonl ({e.strerror or type(e).__name__})", config=config)
        except FileRefused as e:
            return _unreadable(path, str(e), config=config, kind=_str_or_none(_section_value(config, "model",
                                                                                                   "kind")))
    else:
        notes.append("no metrics.jsonl yet")
    if config is None:
        if scan.config is None:
            return _unreadable(path, f"{config_problem}, and no start record in metrics.jsonl to take the settings "
                                     "from" if has_metrics else config_problem)
        config = scan.config
        notes.append(f"{config_problem}; settings from metrics.jsonl")
    if scan.records == 0 and scan.skipped:
        return _unreadable(path, f"metrics.jsonl has no readable record ({scan.skipped} damaged line(s): "
                                 f"{'; '.join(scan.problems)})", config=config, damaged=scan.skipped,
                           kind=_str_or_none(_section_value(config, "model", "kind")))
    if scan.skipped:
        notes.append(f"skipped {scan.skipped} unreadable line(s) of metrics.jsonl ({'; '.join(scan.problems)}"
                     f"{' ...' if scan.skipped > len(scan.problems) else ''})")
    return _summary(path, config, scan, tail, notes, running_within_s)


def _summary(path: Path, config: dict, scan: _Scan, tail: bytes, notes: list[str],
             running_within_s: float) -> RunSummary:
    metrics_mtime, config_mtime = _mtime(path / "metrics.jsonl"), _mtime(path / "config.json")
    touched = max((t for t in (metrics_mtime, config_mtime) if t is not None), default=None)
    if scan.end is not None and scan.end.status in _ENDED:
        status = scan.end.status
        notes.insert(0, scan.end.reason)
    elif touched is not None and time.time() - touched < running_within_s:
        status = "running"
    else:
        status = "unfinished"
        if tail.strip():
            notes.append("its last line was never finished")
    epochs = _section_value(config, "train", "epochs")
    last = scan.last_epoch
    return RunSummary(
        path=path, name=path.name,
        started=scan.first_time if scan.first_time is not None else config_mtime,
        updated=scan.last_time if scan.last_time is not None else touched,
        kind=_str_or_none(_section_value(config, "model", "kind")),
        dataset=_str_or_none(_section_value(config, "data", "name")),
        subset=_subset(config), status=status,
        epochs_done=last.epoch if last is not None else 0,
        epochs_total=epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None,
        step=scan.step, best_val=scan.best,
        headline={k: float(v) for k, v in (last.val.items() if last is not None else ())},
        config=config, reason="; ".join(n for n in notes if n), damaged=scan.skipped)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def is_run_folder(path: Path) -> bool:
    try:
        return (path / "metrics.jsonl").exists() or (path / "config.json").exists()
    except OSError:
        return False


def find_runs(folders: Sequence[str | Path], *, running_within_s: float = 120.0) -> list[RunSummary]:
    """Every run in `folders`: a folder that is itself a run, and each run folder directly inside the others
    (folders that do not exist or hold no run give nothing). Newest first (by start, else last update)."""
    found: dict[Path, RunSummary] = {}
    for folder in folders:
        folder = Path(folder)
        if is_run_folder(folder):
            candidates: Iterable[Path] = [folder]
        else:
            try:
                candidates = [p for p in folder.iterdir() if p.is_dir() and is_run_folder(p)]
            except OSError:
                continue
        for path in candidates:
            key = path.resolve()
            if key not in found:
                found[key] = read_run(path, running_within_s=running_within_s)
    runs = list(found.values())
    runs.sort(key=lambda r: (r.started or r.updated or 0.0, r.name), reverse=True)
    return runs


# ------------------------------------------------------------------------------------------------ curves
def _add_points(points: dict[str, list[tuple[int, int, float, float]]], event: Any) -> None:
    def add(name: str, step: int, epoch: int, when: float | None, value: float) -> None:
        points.setdefault(name, []).append((step, epoch, math.nan if when is None else when, float(value)))

    if isinstance(event, StepMetrics):
        for key, value in event.metrics.items():
            add(str(key), event.step, event.epoch, event.time, value)
        add("lr", event.step, event.epoch, event.time, event.lr)
    elif isinstance(event, EpochSummary):
        for key, value in event.val.items():
            add(f"val {key}", event.step, event.epoch, event.time, value)
    elif isinstance(event, RunStarted) and event.start_step > 0:   # resumed: drop what is redone from here
        for series in points.values():
            while series and series[-1][0] > event.start_step:
                series.pop()


def load_series(path: str | Path) -> dict[str, Series]:
    """A run's curves: each step metric ("loss", "recon", "kl", "lr" ...) per step record and each validation metric
    ("val loss", "val elbo" ...) per epoch. A resumed run's records from before its restart point that were redone are
    replaced by the redone ones. Unreadable lines are skipped; an unreadable folder has no series ({})."""
    points: dict[str, list[tuple[int, int, float, float]]] = {}
    try:
        with open_regular(Path(path) / "metrics.jsonl", MAX_METRICS_BYTES, within=path) as f:
            for line in _Lines(f, MAX_LINE_BYTES):
                event = decode_line(line)[0]
                _add_points(points, event)
    except (OSError, FileRefused):
        return {}
    out = {}
    for name, rows in points.items():
        if not rows:
            continue
        step, epoch, when, value = zip(*rows, strict=True)
        out[name] = Series(name, np.asarray(step, np.int64), np.asarray(epoch, np.int64),
                           np.asarray(when, np.float64), np.asarray(value, np.float64))
    return out


# ------------------------------------------------------------------------------------------------ settings
def flatten_config(config: dict | None) -> dict[str, Any]:
    """{"section.field": value} of a config dict (lists stay lists)."""
    out: dict[str, Any] = {}
    if not isinstance(config, dict):
        return out
    for section, values in config.items():
        if isinstance(values, dict):
            for name, value in values.items():
                out[f"{section}.{name}"] = value
        else:
            out[str(section)] = values
    return out


def config_diff(summaries: Sequence[RunSummary]) -> dict[str, list[Any]]:
    """The settings ("section.field") whose values differ between the runs, each with its values in run order (None
    for a run that lacks it). Runs without a config take no part in deciding what differs."""
    flat = [flatten_config(s.config) if s.config is not None else None for s in summaries]
    known = [f for f in flat if f is not None]
    keys: list[str] = []
    for f in known:
        keys += [k for k in f if k not in keys]
    diff = {}
    for key in keys:
        values = [f.get(key) for f in known]
        if any(v != values[0] for v in values[1:]):
            diff[key] = [f.get(key) if f is not None else None for f in flat]
    return diff
