"""A run folder seen from outside the process that trains: preview pictures, and following a run live.

The Trainer writes `metrics.jsonl` (one event record per line, flushed), `checkpoints/` and `samples/`. `follow_run`
tails that folder from another process (the GUI following a `vae-explorer train` or a torchrun job on a shared disk)
and yields the same events the Trainer yields in-process, including a model snapshot and a sample preview for each
new checkpoint, so the dashboard looks the same either way.
`remove_leftovers` deletes the temporary files that a process killed while saving a checkpoint left behind.

A run folder has one writer: `acquire_run_folder` takes its lock (a `.lock` file created with O_EXCL that names the
holder's host, process and start time, also flock'ed while held) for the run's lifetime and refuses a second writer in
one line naming the holder. A lock left by a process that no longer runs is taken over, with a note saying so. A folder
that already holds files is refused unless the run continues there (`resume`) or the caller chose `overwrite`, which
moves the old files aside to a sibling folder (never deletes them). Followers only read and never take the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from core.config import Config
from core.errors import UserError
from core.files import FileRefused, open_regular, printable, size_text
from core.images import image_grid, save_png, to_uint8
from core.models.protocol import GenerativeModel, is_vae
from core.paths import runs_dir
from core.training.events import (
    CheckpointSaved,
    Event,
    LogMessage,
    ModelSnapshot,
    Preview,
    RecordError,
    RunEnded,
    decode_record,
)

PREVIEW_PER_CLASS = 8
PREVIEW_MAX_CLASSES = 10
PREVIEW_RECONSTRUCTIONS = 8


@torch.no_grad()
def make_preview(model: GenerativeModel, split, *, epoch: int, step: int, seed: int,
                 device: torch.device | str = "cpu") -> Preview:
    """Class-conditional samples (one row per class, the same noise every time) and, for models that reconstruct,
    the first images of `split` (None: no data at hand) with their reconstructions."""
    nc = model.num_classes
    labels = (torch.arange(min(nc, PREVIEW_MAX_CLASSES)).repeat_interleave(PREVIEW_PER_CLASS) if nc
              else torch.zeros(PREVIEW_PER_CLASS * PREVIEW_PER_CLASS, dtype=torch.long))
    gen = torch.Generator().manual_seed(seed + 777)
    samples = to_uint8(model.sample(labels.to(device), generator=gen))
    originals = recons = None
    if split is not None and len(split) and is_vae(model):
        from core.images import as_float

        xb, yb = next(iter(split.batches(PREVIEW_RECONSTRUCTIONS, shuffle=False)))
        xb, yb = as_float(xb.to(device)), yb.to(device)
        originals = to_uint8(xb)
        recons = to_uint8(model.reconstruct(xb, yb))
    return Preview(epoch, step, samples, labels.numpy(), originals, recons)


def save_preview_png(ev: Preview, path: Path, columns: int = PREVIEW_PER_CLASS) -> None:
    """Samples one row per class, then (when present) a row of originals and a row of their reconstructions."""
    blocks = [ev.samples]
    if ev.originals is not None and ev.reconstructions is not None:
        blocks += [ev.originals, ev.reconstructions]
    # Each block starts a new row of the grid: pad it with blank cells to whole rows.
    cells = [np.concatenate([b, np.zeros((-len(b) % columns, *b.shape[1:]), np.uint8)]) for b in blocks]
    save_png(image_grid(np.concatenate(cells), columns, padding=1), str(path))


def new_run_dir(cfg: Config, parent: Path | None = None) -> Path:
    """A fresh run folder's path (not created): PARENT/YYYYmmdd-HHMMSS-DATASET-KIND, then -2, -3 ... if taken.
    The GUI and the CLI both name their runs here, so a runs folder reads the same whoever started them."""
    name = cfg.data.name
    dataset = ("folder-" + Path(name.removeprefix("folder:")).name) if name.startswith("folder:") else name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset).strip("-")[:40] or "data"
    base = (parent or runs_dir()) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{cfg.model.kind}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


# core.files.atomic_write writes `.{name}.tmp-{pid}` beside the target and renames it; a kill -9 in between leaves it.
_LEFTOVER = re.compile(r"^\..+\.tmp-([0-9]+)$")
# A follower may watch a run that a process on another machine writes (a shared disk): its pid means nothing here, so
# the follower only removes a leftover that nobody has written to for this long (a save rewrites it within seconds).
FOLLOW_LEFTOVER_MIN_AGE_S = 600.0


def _process_running(pid: int) -> bool:
    """Whether a process with this id exists here (when in doubt: yes, so its file is kept)."""
    if os.name == "nt":   # os.kill(pid, 0) would terminate the process on Windows
        return True
    if pid <= 0:          # 0 and negative ids name process groups, not a writer
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:   # larger than any process id
        return False
    except OSError:         # e.g. PermissionError: it exists, owned by another user
        return True
    return True


def remove_leftovers(run_dir: str | Path, *, min_age_s: float = 0.0) -> list[Path]:
    """Delete the temporary checkpoint files in `run_dir/checkpoints` whose writing process no longer runs (and that
    were last written at least `min_age_s` ago); returns the files removed. A live writer's file is never touched, and
    a file that cannot be removed is left for next time: this is cleaning, never a reason to fail."""
    folder = Path(run_dir) / "checkpoints"
    try:
        entries = list(folder.iterdir())
    except OSError:   # no checkpoints yet, or not readable: nothing to clean
        return []
    removed = []
    now = time.time()
    for path in sorted(entries):
        match = _LEFTOVER.match(path.name)
        if match is None or _process_running(int(match.group(1))):
            continue
        try:
            if path.is_symlink() or not path.is_file() or now - path.stat().st_mtime < min_age_s:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------------ one writer
LOCK_NAME = ".lock"
_LOCK_MAX_BYTES = 4096
_YOUNG_LOCK_S = 5.0       # a lock file this new that does not say who holds it yet is still being written
_STALE_WAIT_S = 3.0       # how long a taker waits for a lock held by a process that no longer runs (another taker)

try:
    import fcntl
except ImportError:       # Windows: the lock file alone, and a stale one is recognised by its host and process only
    fcntl = None


@dataclass(frozen=True)
class LockHolder:
    """Who writes a run folder: what its lock file says."""

    host: str
    pid: int
    started: float        # epoch seconds
    command: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        what = f" ({self.command})" if self.command else ""
        return printable(f"process {self.pid} on {self.host}{what}, started {when}")

    def to_bytes(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "started": self.started,
                           "command": self.command}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockHolder | None:
        try:
            raw = json.loads(data)
            host, pid, started, command = raw["host"], raw["pid"], raw["started"], raw.get("command", "")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        if not (isinstance(host, str) and type(pid) is int and type(started) in (int, float)
                and isinstance(command, str)) or not 0 <= started < 1e11 or not 0 < pid < 2**31:
            return None
        return cls(host[:200], pid, float(started), command[:200])


class RunFolderBusy(UserError):
    """The run folder's lock is held by a writer that still runs (or may: another machine's)."""

    def __init__(self, folder: Path, holder: LockHolder | None, *, unsure: bool = False) -> None:
        self.folder, self.holder = folder, holder
        who = holder.describe() if holder is not None else "another process (its lock file is being written)"
        advice = (f"; if that process is gone, delete {folder / LOCK_NAME}" if unsure else
                  "; wait for that run to end or stop it, or choose another folder")
        super().__init__(printable(f"the run folder {folder} is being written by {who}{advice}"))


class RunFolderNotEmpty(UserError):
    """The folder already holds files, and the caller neither continues a run there nor chose to replace them."""

    def __init__(self, folder: Path, entries: list[str]) -> None:
        self.folder, self.entries = folder, entries
        is_run = "metrics.jsonl" in entries or "config.json" in entries
        what = "a run" if is_run else f"{len(entries)} other file(s) (e.g. {entries[0]})"
        last = folder / "checkpoints" / "last.safetensors"
        cont = f"continue it with --resume {last}, " if last.is_file() else ""
        super().__init__(printable(f"{folder} already holds {what}; {cont}start over with --overwrite (moves its "
                                   "files to a new folder beside it, deletes nothing), or choose another folder"))


class RunFolderLock:
    """A run folder's lock, held until `release()` (or the end of a `with` block). `notes` say what was done on the
    way (a stale lock taken over, old files moved aside to `moved_to`)."""

    def __init__(self, folder: Path, fd: int, holder: LockHolder, notes: list[str]) -> None:
        self.folder, self.holder, self.notes = folder, holder, notes
        self.moved_to: Path | None = None
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file (when it is still ours) and let go; safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(self.folder / LOCK_NAME, os.fstat(fd)):
                os.unlink(self.folder / LOCK_NAME)
        except OSError:   # the folder went away, or was made read-only: the next taker finds it stale
            pass
        finally:
            os.close(fd)   # also releases the flock

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_run_folder(folder: str | Path, *, resume: bool = False, overwrite: bool = False,
                       command: str | None = None) -> RunFolderLock:
    """Become the one writer of `folder` (created when missing) for a run's lifetime.

    A folder that already holds files (other than a lock) is refused with RunFolderNotEmpty unless `resume` (the run
    continues there) or `overwrite` (its files are moved to a new sibling `NAME.replaced-TIME`, never deleted). A live
    writer's lock is refused with RunFolderBusy naming it; a lock left by a process that no longer runs is taken over
    and said in `notes`. `command` names the writer for whoever is refused (default: this program's name)."""
    folder = Path(os.path.abspath(folder))
    try:
        if folder.exists() and not folder.is_dir():
            raise UserError(printable(f"{folder} is a file; give a folder for the run"))
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(printable(f"cannot create the run folder {folder} ({_reason(e)}); choose a folder you can "
                                  "write to")) from None
    lock = _take_lock(folder, command or Path(sys.argv[0] or "python").name)
    try:
        entries = _entries(folder)
        if entries and not resume:
            if not overwrite:
                raise RunFolderNotEmpty(folder, entries)
            lock = _move_aside(folder, lock)
    except BaseException:
        lock.release()
        raise
    return lock


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(name for name in os.listdir(folder) if name != LOCK_NAME)
    except OSError as e:
        raise UserError(printable(f"cannot read the run folder {folder} ({_reason(e)})")) from None


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _flock(fd: int) -> str:
    """"ours" when this descriptor now holds the file's flock, "held" when another does, "unsupported" when the file
    system cannot tell (the lock file alone counts there)."""
    if fcntl is None:
        return "unsupported"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held"
    except OSError:
        return "unsupported"
    return "ours"


def _take_lock(folder: Path, command: str) -> RunFolderLock:
    path = folder / LOCK_NAME
    holder = LockHolder(socket.gethostname(), os.getpid(), time.time(), command)
    notes: list[str] = []
    deadline = time.monotonic() + _STALE_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            note = _clear_stale(folder, path, wait=time.monotonic() < deadline)
            if note:
                notes.append(note)
            else:
                time.sleep(0.05)
            continue
        except OSError as e:
            raise UserError(printable(f"cannot write in the run folder {folder} ({_reason(e)}); choose a folder you "
                                      "can write to")) from None
        if _flock(fd) == "held" or not _write_holder(fd, path, holder, folder):
            os.close(fd)   # a taker thought our brand-new file stale and replaced it: start again
            if time.monotonic() > deadline:
                raise RunFolderBusy(folder, _read_holder(path))
            continue
        return RunFolderLock(folder, fd, holder, notes)


def _write_holder(fd: int, path: Path, holder: LockHolder, folder: Path) -> bool:
    try:
        os.write(fd, holder.to_bytes())
        os.fsync(fd)
    except OSError as e:
        st = os.fstat(fd)
        os.close(fd)
        if _same_file(path, st):
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise UserError(printable(f"cannot write in the run folder {folder} ({_reason(e)}); free some space or "
                                  "choose another folder")) from None
    return _same_file(path, os.fstat(fd))


def _read_holder(path: Path) -> LockHolder | None:
    try:
        with open(path, "rb") as f:
            return LockHolder.from_bytes(f.read(_LOCK_MAX_BYTES))
    except OSError:
        return None


def _clear_stale(folder: Path, path: Path, *, wait: bool) -> str | None:
    """Look at an existing lock: raise RunFolderBusy when its writer runs; remove it when it is stale and say so
    (the note); None to look again (it went away, is being written, or is being taken over by another)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UserError(printable(f"cannot read the lock of the run folder {folder} ({_reason(e)})")) from None
    try:
        state = _flock(fd)
        st = os.fstat(fd)
        holder = LockHolder.from_bytes(os.read(fd, _LOCK_MAX_BYTES))
        here = holder is not None and holder.host == socket.gethostname()
        if state == "held":   # a live writer, or (its process gone) another taker removing a stale lock right now
            if wait and here and not _alive(holder):
                return None
            raise RunFolderBusy(folder, holder)
        if holder is None:
            if time.time() - st.st_mtime < _YOUNG_LOCK_S and wait:
                return None
            left = "a lock file that does not say who wrote it"
        elif here:
            if _alive(holder):
                raise RunFolderBusy(folder, holder, unsure=os.name == "nt")
            left = f"{holder.describe()}, which no longer runs"
        elif state == "ours":   # another machine's lock that nobody holds (flock works across NFS)
            left = f"{holder.describe()}, which holds it no more"
        else:
            raise RunFolderBusy(folder, holder, unsure=True)
        if not _same_file(path, st):
            return None
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UserError(printable(f"cannot remove the stale lock {path} ({_reason(e)})")) from None
        return printable(f"took over the run folder {folder}: its lock was left by {left}")
    finally:
        os.close(fd)


def _alive(holder: LockHolder) -> bool:
    """Whether the lock's process (on this machine) still runs: its id in use by a process started no later than the
    lock (a later one reused the id)."""
    if holder.pid == os.getpid():
        return True
    if not _process_running(holder.pid):
        return False
    started = _process_start_time(holder.pid)
    return started is None or started <= holder.started + 2.0


def _process_start_time(pid: int) -> float | None:
    """When a process started (epoch seconds), where /proc tells (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])   # field 22, counted after the command name
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _move_aside(folder: Path, lock: RunFolderLock) -> RunFolderLock:
    """`--overwrite`: rename the folder (files, lock and all) to a new sibling, make it afresh and lock that."""
    base = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    target, i = base, 1
    while os.path.lexists(target):
        i += 1
        target = base.with_name(f"{base.name}-{i}")
    try:
        os.rename(folder, target)
    except OSError as e:
        raise UserError(printable(f"--overwrite: cannot move {folder} aside to {target} ({_reason(e)}); move or "
                                  "rename it yourself")) from None
    lock.folder = target   # our lock moved with it: released once the new folder is ours
    try:
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        new = _take_lock(folder, lock.holder.command)
    except OSError as e:
        raise UserError(printable(f"cannot create the run folder {folder} ({_reason(e)})")) from None
    finally:
        lock.release()
    new.notes = [*lock.notes, *new.notes, printable(f"moved the earlier files of {folder} to {target} (nothing "
                                                    "deleted)")]
    new.moved_to = target
    return new


class _CheckpointViewer:
    """Turns the newest checkpoint of a followed run into a ModelSnapshot and a Preview (on the follower's thread)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._split = None
        self._data_key = None

    def locate(self, ev: CheckpointSaved) -> Path:
        """The checkpoint file as seen from here: the writer's absolute path may belong to another machine."""
        path = Path(ev.path)
        return path if path.is_file() else self.run_dir / "checkpoints" / path.name

    def events(self, ev: CheckpointSaved) -> Iterator[Event]:
        from core.training.checkpoint import load_model

        try:
            loaded = load_model(self.locate(ev))
        except UserError as err:   # e.g. replaced by a newer one while we read: the next checkpoint will do
            yield LogMessage("warning", f"could not show checkpoint {ev.path}: {err}", ev.step)
            return
        state = {k: v.detach().float().numpy().copy() if v.is_floating_point() else v.detach().numpy().copy()
                 for k, v in loaded.model.state_dict().items()}
        yield ModelSnapshot(loaded.epoch, loaded.step, loaded.config.to_dict(), loaded.meta.to_dict(), state)
        yield make_preview(loaded.model, self._validation_split(loaded), epoch=loaded.epoch, step=loaded.step,
                           seed=loaded.config.train.seed)

    def _validation_split(self, loaded):
        """The run's validation images for reconstructions, when its dataset is readable here (else none)."""
        key = loaded.config.data
        if key != self._data_key:
            from core.data.datasets import load_dataset

            self._data_key = key
            try:
                self._split = load_dataset(key).val
            except UserError:
                self._split = None
        return self._split


MAX_RECORD_BYTES = 1 << 20   # a record is a few kB at most: a longer line is skipped unread (a 50 MB line)
_READ_CHUNK = 1 << 20
_SKIPS_SAID = 3              # damaged lines said one by one; after that, a running count


def follow_run(run_dir: str | Path, *, poll_s: float = 0.5, should_stop: Callable[[], bool] | None = None,
               models: bool = True) -> Iterator[Event]:
    """Tail `run_dir/metrics.jsonl` that another process writes: yield each event as its line appears.

    With `models`, each time the reader has caught up and a checkpoint was saved since the last look, the newest one is
    loaded and a ModelSnapshot and a Preview follow (only the newest: replaying a long history loads one checkpoint).
    Ends when the newest record read is a RunEnded (a resumed run appends after an earlier RunEnded, so an old end
    does not stop the tail) or when should_stop() is true. Half-written lines wait for their newline. Each event
    carries its record's `time` (when the writer wrote it; None in run folders written before records had times).

    Never raises for what the file holds: a line that is not a record, a record with wrong-typed fields, or a line
    over MAX_RECORD_BYTES is skipped, and said as a warning (the first few each, then how many so far). A
    metrics.jsonl that is not a regular file (a FIFO, a device) is said as an error and not read.
    """
    run_dir = Path(run_dir)
    remove_leftovers(run_dir, min_age_s=FOLLOW_LEFTOVER_MIN_AGE_S)
    path = run_dir / "metrics.jsonl"
    should_stop = should_stop or (lambda: False)
    viewer = _CheckpointViewer(run_dir) if models else None
    newest: CheckpointSaved | None = None
    while not (path.exists() or path.is_symlink()):
        if should_stop():
            return
        time.sleep(poll_s)
    try:
        f = open_regular(path, sys.maxsize)
    except (OSError, FileRefused) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        yield LogMessage("error", printable(f"cannot follow {path}: {reason}"), 0)
        return
    lines = _RecordLines(f)
    ended = False
    with f:
        while True:
            got = False
            for number, line in lines.read():
                got = True
                event, why = decode_line(line)
                if event is None:
                    note = lines.skipped(number, why)
                    if note:
                        yield note
                    continue
                ended = isinstance(event, RunEnded)
                if isinstance(event, CheckpointSaved):
                    newest = event
                if ended and viewer is not None and newest is not None:   # RunEnded stays the last event
                    yield from viewer.events(newest)
                    newest = None
                yield event
            if got:
                continue
            note = lines.count_note()
            if note is not None:
                yield note
            if viewer is not None and newest is not None:   # caught up: show the newest model
                yield from viewer.events(newest)
                newest = None
                continue
            if ended or should_stop():
                return
            time.sleep(poll_s)


def decode_line(line: bytes | None) -> tuple[Event | None, str]:
    """The event of one line of metrics.jsonl, or None and why not. The one decoder of run records read from a file:
    the follower here and the run history (core.runs.history) both use it. `None` stands for a line longer than
    MAX_RECORD_BYTES (dropped unread by the line reader). A blank line is not damage (an editor's trailing newline, an
    interrupted write's empty line): None with "" as the reason, which callers skip without counting."""
    if line is None:
        return None, f"longer than {size_text(MAX_RECORD_BYTES)}"
    if not line.strip():
        return None, ""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):   # garbage bytes (UTF-8 errors are ValueErrors), not JSON, absurd nesting
        return None, "not a JSON record"
    try:
        event = decode_record(record)
    except RecordError as e:
        return None, str(e)
    return (event, "") if event is not None else (None, "a record of an unknown type")


class _RecordLines:
    """The complete lines appended to a file since the last look, read in bounded chunks: a line longer than
    MAX_RECORD_BYTES comes out as None without being kept; a half-written last line waits for its newline."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.buffer, self.too_long, self.number = f, b"", False, 0
        self.damaged, self.reported = 0, 0

    def read(self) -> Iterator[tuple[int, bytes | None]]:
        while chunk := self.f.read(_READ_CHUNK):
            if self.too_long:   # inside a line already over the limit: drop up to its newline
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                self.number += 1
                yield self.number, None
                chunk, self.too_long = chunk[nl + 1:], False
            *complete, self.buffer = (self.buffer + chunk).split(b"\n")
            for line in complete:
                self.number += 1
                yield self.number, line if len(line) <= MAX_RECORD_BYTES else None
            if len(self.buffer) > MAX_RECORD_BYTES:
                self.buffer, self.too_long = b"", True

    def skipped(self, number: int, why: str) -> LogMessage | None:
        if not why:
            return None
        self.damaged += 1
        if self.damaged > _SKIPS_SAID:
            return None
        self.reported = self.damaged
        return LogMessage("warning", printable(f"skipped line {number} of metrics.jsonl: {why[:300]}"), 0)

    def count_note(self) -> LogMessage | None:
        """When lines were skipped unsaid since the last note: how many damaged lines were skipped in all."""
        if self.damaged == self.reported:
            return None
        self.reported = self.damaged
        return LogMessage("warning", f"{self.damaged} damaged line(s) of metrics.jsonl skipped so far", 0)
