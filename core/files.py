"""Writing files so that a crash, a kill or a full disk never leaves half of one: the one atomic write of the project.

The data goes to a temporary file in the same folder, which is flushed to disk (fsync) and renamed over the target;
then the folder itself is synced so that the rename survives a power cut. A reader sees the old file or the new one,
never a mix, and a failed write leaves the old file as it was and no temporary file behind.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it into place atomically and durably; returns `path`."""
    path = Path(path)
    # The temporary name stays short enough for any target name the file system takes (255 bytes).
    stem = os.fsencode(path.name)[:200].decode(errors="ignore") or "file"
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _sync_folder(path.parent)
    return path


def check_writable(folder: str | Path, what: str) -> None:
    """Make sure files can be written in `folder` (created when missing) before long work writes there: UserError
    naming `what` (e.g. "--out") and the reason otherwise."""
    from core.errors import UserError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(f"{what}: cannot write in {folder} ({reason}); choose a folder you can write to") from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (not possible on every platform: Windows cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def printable(text: str) -> str:
    """`text` safe to show on a terminal or in a one-line message: control characters (escape sequences, carriage
    returns, newlines), Unicode format characters (right-to-left overrides) and other non-printables become visible
    escapes like \\x1b, so a file or run name can neither rewrite the screen nor hide part of a line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


# ------------------------------------------------------------------------------------------------ reading safely
class FileRefused(Exception):
    """A file that is not read at all; the message says why (not a regular file, too big, a link out of its folder)."""


def open_regular(path: str | Path, limit: int, *, within: str | Path | None = None) -> BinaryIO:
    """`path` opened for binary reading when it is a regular file of at most `limit` bytes. Never blocks: a FIFO is
    opened non-blocking and refused like a device or a socket, so a reader never hangs on one or reads /dev/zero
    forever. With `within`, a symbolic link must point inside that folder. OSError when it cannot be opened
    (FileNotFoundError: there is none), FileRefused when it is not read."""
    path = Path(path)
    if within is not None and path.is_symlink() and not path.resolve().is_relative_to(Path(within).resolve()):
        raise FileRefused(f"{path.name} is a link to a file outside {Path(within).name}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{path.name} is not a regular file (a folder, a FIFO, a device or a socket)")
        if st.st_size > limit:
            raise FileRefused(f"{path.name} is {size_text(st.st_size)}, more than the {size_text(limit)} it can be")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int, *, within: str | Path | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see open_regular); the file growing meanwhile is cut at
    the limit + 1 bytes, which the caller's parser then rejects."""
    with open_regular(path, limit, within=within) as f:
        return f.read(limit + 1)


def size_text(n: int) -> str:
    """A byte count for people: 10.7 GB, 1.0 MB, 512 bytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# ------------------------------------------------------------------------------------------------ output files
NAME_MAX = 255            # bytes in one file name on the common file systems (ext4, APFS, NTFS in UTF-16 units)
PATH_MAX = 4000           # a little under Linux's 4096 bytes for a whole path
# A run folder's own records (core.training writes them): no output of another command may replace them.
RUN_RECORDS = ("metrics.jsonl", "config.json", "eval.json", ".lock")
RUN_RECORD_FOLDERS = ("checkpoints", "samples", "tensorboard")


def check_output_file(path: str | Path, *, flag: str, suffixes: Iterable[str]) -> Path:
    """`path` when it is a file name a command may write its result to; else one UserError naming `flag`: the wrong
    suffix, a name longer than the file system takes (said before any work, not as an OSError after it), a folder,
    a folder that does not exist, or one of a run folder's own records (metrics.jsonl, config.json, anything in its
    checkpoints/ or samples/), which an output must never overwrite."""
    from core.errors import UserError

    path = Path(path)
    suffixes = tuple(suffixes)
    shown = printable(str(path))
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{flag} {shown}: the file name must end in {' or '.join(suffixes)}")
    limit = _name_max(path.parent)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(f"{flag}: the name {printable(part[:40])}... is {size} bytes long; a file or folder "
                            f"name can have at most {limit} here")
    if len(os.fsencode(str(path.absolute()))) > PATH_MAX:
        raise UserError(f"{flag}: the path is longer than the {PATH_MAX} bytes a file system takes")
    if path.is_dir():
        raise UserError(f"{flag} {shown} is a folder; give the file to write, e.g. "
                        f"{printable(str(path / ('out' + suffixes[0])))}")
    if not path.parent.is_dir():
        raise UserError(f"{flag}: the folder {printable(str(path.parent))} does not exist")
    run = run_folder_holding(path)
    if run is not None:
        raise UserError(f"{flag} {shown} would overwrite the records of the run folder {printable(str(run))}; "
                        "write it outside that run's metrics.jsonl, config.json, checkpoints/ and samples/")
    return path


def run_folder_holding(path: str | Path) -> Path | None:
    """The run folder when `path` is one of its records (see RUN_RECORDS, RUN_RECORD_FOLDERS), else None."""
    p = Path(os.path.abspath(path))
    try:
        p = p.parent.resolve() / p.name      # the folder as it really is; the name as given (it may be a link)
    except (OSError, RuntimeError):
        return None
    candidates = [(p.parent, p.name in RUN_RECORDS or p.name.startswith(".") and ".tmp-" in p.name)]
    candidates += [(up.parent, up.name in RUN_RECORD_FOLDERS) for up in p.parents if up.parent != up]
    for folder, is_record in candidates:
        if is_record and _looks_like_run(folder):
            return folder
    return None


def _looks_like_run(folder: Path) -> bool:
    try:
        return (folder / "metrics.jsonl").exists() or (folder / "config.json").exists()
    except OSError:
        return False


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):   # not there yet, or no pathconf (Windows)
        return NAME_MAX
