"""The workspace as a small, versioned JSON file (no Qt here): what it holds, reading it back validated, and loading
the models it names.

A workspace is what a user set up and would rebuild by hand after a restart: the models list (names as renamed,
where each model came from, which ones are shown and pinned), the run folders they follow, the Train form and the
panels' settings. The app writes it on quit and reads it on launch; File > Save workspace as... writes the same file
anywhere, for a colleague to open. Checkpoints are named by path, never copied in: the file stays a few kilobytes.

Reading is strict at the boundary (msgspec validates every field's type): a damaged or foreign file is one
`UserError` line, never a traceback and never half a workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from core.errors import UserError
from core.files import atomic_write_bytes

VERSION = 1
MAX_BYTES = 4 * 1024 * 1024        # a workspace is kilobytes; anything this large is not one
FINISHED = {"completed", "early_stopped"}
FormValue = str | int | float | bool


class SavedModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    source: str                    # "bundled", "checkpoint", "training", "run folder", "experiment"
    kind: str                      # "vae", "diffusion"
    path: str | None = None        # the checkpoint file (models opened from a file)
    folder: str | None = None      # the run folder (training runs and followed folders: their newest checkpoint)
    shown: bool = False            # the model of its kind the panels show


class TrainForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: str                      # "vae" or "diffusion"
    preset: str = ""               # the preset named above the form; "" when the user's own settings
    values: dict[str, dict[str, FormValue]] = msgspec.field(default_factory=dict)   # form ("data", "vae", ...) ->
    # field -> what the editor held, as typed


class Workspace(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    version: int = VERSION
    models: list[SavedModel] = msgspec.field(default_factory=list)
    pins: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)   # panel -> kind -> index in `models`
    following: str | None = None   # the run folder the Train tab followed
    follow_training: bool = False
    train_form: TrainForm | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)   # explorer/settings.py's "<panel>.<name>"


def write_workspace(path: str | Path, workspace: Workspace) -> Path:
    """Write `path` atomically (a crash mid-write leaves the previous file), indented for a reader."""
    data = msgspec.json.format(msgspec.json.encode(workspace), indent=2) + b"\n"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(path, data)
    except OSError as e:
        raise UserError(f"could not write the workspace {path}: {e.strerror or e}") from None


def read_workspace(path: str | Path) -> Workspace:
    """The workspace in `path`; UserError (one line: which file, what is wrong) when it cannot be used."""
    path = Path(path)
    what = f"the workspace file {path}"
    try:
        if not path.is_file():
            raise UserError(f"{what} does not exist" if not path.exists() else f"{what} is not a file")
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{what} is {path.stat().st_size:,} bytes: not a workspace (they are kilobytes)")
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {what}: {e.strerror or e}") from None
    try:
        version = msgspec.json.decode(data, type=_Version).version
    except msgspec.DecodeError as e:
        raise UserError(f"{what} is not valid JSON ({e}); save a workspace again with File > Save workspace "
                        "as") from None
    except msgspec.ValidationError as e:
        raise UserError(f"{what} is not a VAE Explorer workspace ({e})") from None
    if version > VERSION:
        raise UserError(f"{what} is of version {version}, written by a newer VAE Explorer (this one reads up to "
                        f"{VERSION}); update the app to open it")
    try:
        workspace = msgspec.json.decode(data, type=Workspace)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise UserError(f"{what} is damaged ({e}); the workspace starts empty") from None
    problem = _check(workspace)
    if problem:
        raise UserError(f"{what} is damaged ({problem}); the workspace starts empty")
    return workspace


class _Version(msgspec.Struct):
    version: int


def _check(ws: Workspace) -> str:
    """What msgspec's types cannot say: pins name models of the file, models name a file or a folder."""
    for panel, kinds in ws.pins.items():
        for kind, index in kinds.items():
            if not 0 <= index < len(ws.models):
                return f"pin {panel}/{kind} names model {index}, the file lists {len(ws.models)}"
    for i, m in enumerate(ws.models):
        if m.path is None and m.folder is None:
            return f"model {i} ({m.name!r}) names neither a checkpoint file nor a run folder"
    return ""


# ---- loading what a workspace names (on a worker thread: it imports torch) ---------------------------------------
@dataclass
class Restored:
    """One saved model as found now: loaded, to follow, or dropped with the reason (`note`)."""

    index: int
    saved: SavedModel
    loaded: Any = None             # core.training.checkpoint.LoadedModel
    status: str = ""               # "completed", "interrupted", "failed" for a run folder's model
    resume: str | None = None      # the checkpoint an interrupted run continues from
    follow: bool = False           # the followed run is still being written: follow it again
    note: str = ""                 # why it was dropped (`loaded` is None and `follow` False)
    step: int = 0
    epochs: str = ""               # "3/20" for an interrupted run


def last_checkpoint(folder: str | Path) -> Path:
    return Path(folder) / "checkpoints" / "last.safetensors"


def load_saved_models(workspace: Workspace, skip: frozenset[int] = frozenset()) -> list[Restored]:
    """Each model of `workspace` but the indices in `skip` (already in the app, e.g. the bundled ones), loaded; a
    missing file or folder is a `Restored` with its note, never an exception."""
    from core.runs.history import read_run
    from core.training.checkpoint import load_model

    out = []
    for index, saved in enumerate(workspace.models):
        if index in skip:
            continue
        r = Restored(index, saved)
        out.append(r)
        if saved.folder is not None:
            summary = read_run(saved.folder)
            if summary.status == "unreadable":
                r.note = f"{saved.folder}: {summary.reason}"
                continue
            if summary.status == "running" and saved.folder == workspace.following:
                r.follow = True
                continue
            file = last_checkpoint(saved.folder)
            r.step, r.epochs = summary.step, f"{summary.epochs_done}/{summary.epochs_total or '?'}"
            r.status = ("completed" if summary.status in FINISHED else "running" if summary.status == "running"
                        else "failed" if summary.status == "failed" else "interrupted")
            if r.status == "interrupted":
                r.resume = str(file)
        else:
            file = Path(saved.path or "")
        if not file.is_file():
            r.note = f"{file} no longer exists" if saved.folder is None else f"{saved.folder} has no checkpoint"
            r.resume = None
            continue
        try:
            r.loaded = load_model(file)
        except UserError as e:
            r.note, r.resume = str(e), None
    return out
