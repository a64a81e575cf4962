"""A run folder seen from outside the process that trains: preview pictures, and following a run live.

The Trainer writes `metrics.jsonl` (one event record per line, flushed), `checkpoints/` and `samples/`. `follow_run`
tails that folder from another process (the GUI following a `vae-explorer train` or a torchrun job on a shared disk)
and yields the same events the Trainer yields in-process, including a model snapshot and a sample preview for each
new checkpoint, so the dashboard looks the same either way.
`remove_leftovers` deletes the temporary files that a process killed while saving a checkpoint left behind.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from core.config import Config
from core.errors import UserError
from core.images import image_grid, save_png, to_uint8
from core.models.protocol import GenerativeModel, is_vae
from core.paths import runs_dir
from core.training.events import CheckpointSaved, Event, LogMessage, ModelSnapshot, Preview, RunEnded, from_record

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


def follow_run(run_dir: str | Path, *, poll_s: float = 0.5, should_stop: Callable[[], bool] | None = None,
               models: bool = True) -> Iterator[Event]:
    """Tail `run_dir/metrics.jsonl` that another process writes: yield each event as its line appears.

    With `models`, each time the reader has caught up and a checkpoint was saved since the last look, the newest one is
    loaded and a ModelSnapshot and a Preview follow (only the newest: replaying a long history loads one checkpoint).
    Ends when the newest record read is a RunEnded (a resumed run appends after an earlier RunEnded, so an old end
    does not stop the tail) or when should_stop() is true. Half-written lines wait for their newline. Each event
    carries its record's `time` (when the writer wrote it; None in run folders written before records had times).
    """
    run_dir = Path(run_dir)
    remove_leftovers(run_dir, min_age_s=FOLLOW_LEFTOVER_MIN_AGE_S)
    path = run_dir / "metrics.jsonl"
    should_stop = should_stop or (lambda: False)
    viewer = _CheckpointViewer(run_dir) if models else None
    newest: CheckpointSaved | None = None
    while not path.exists():
        if should_stop():
            return
        time.sleep(poll_s)
    buffer = ""
    ended = False
    # Garbage bytes (a damaged disk, a file that is not a run record) become replacement characters: their lines fail
    # to parse and are skipped like any other unreadable line.
    with open(path, encoding="utf-8", errors="replace") as f:
        while True:
            chunk = f.read()
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        event = from_record(json.loads(line))
                    except json.JSONDecodeError:
                        continue
                    if event is not None:
                        ended = isinstance(event, RunEnded)
                        if isinstance(event, CheckpointSaved):
                            newest = event
                        if ended and viewer is not None and newest is not None:   # RunEnded stays the last event
                            yield from viewer.events(newest)
                            newest = None
                        yield event
                continue
            if viewer is not None and newest is not None:   # caught up: show the newest model
                yield from viewer.events(newest)
                newest = None
                continue
            if ended or should_stop():
                return
            time.sleep(poll_s)
