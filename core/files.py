"""Writing files so that a crash, a kill or a full disk never leaves half of one: the one atomic write of the project.

The data goes to a temporary file in the same folder, which is flushed to disk (fsync) and renamed over the target;
then the folder itself is synced so that the rename survives a power cut. A reader sees the old file or the new one,
never a mix, and a failed write leaves the old file as it was and no temporary file behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it into place atomically and durably; returns `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
