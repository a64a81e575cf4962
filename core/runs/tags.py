"""Tags and a free-text note per run (W&B's), kept in the run folder as `notes.json` and never in its records.

`notes.json` is the user's, not the Trainer's: it is written atomically (a temporary file beside it, renamed over it)
and nothing else in the folder is touched, so an edit is safe while a run writes `metrics.jsonl`. It takes no part in
the run folder's one-writer lock (`core.training.run_folder`): that lock guards the run's records, and a tag edited in
the Runs tab while the run trains must neither wait for it nor be refused by it. Two edits of one run at once: the
last one wins, whole (never a mix of both).

Reading never raises: a missing, damaged or foreign file is "no tags, no note" (with the reason for the caller that
wants it). `matches` is the Runs tab's filter: words that must all appear in a run's text, `tag:NAME` (or `#NAME`)
words that must be among its tags.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.files import FileRefused, atomic_write_text, printable, read_regular

NOTES_NAME = "notes.json"
MAX_NOTES_BYTES = 256 * 1024   # a note of a few pages; a bigger file is not ours
MAX_TAGS = 32
MAX_TAG_CHARS = 40
MAX_NOTE_CHARS = 20_000
_TAG_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class RunNotes:
    tags: tuple[str, ...] = ()
    note: str = ""

    def to_json(self) -> str:
        return json.dumps({"tags": list(self.tags), "note": self.note}, ensure_ascii=False, indent=1) + "\n"


def parse_tags(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Tags as typed ("baseline, beta sweep" or a list): split at commas and spaces, a leading '#' dropped, lower
    case, each once in the order given. A UserError (one line) for too many or too long ones."""
    words = _TAG_SPLIT.split(text) if isinstance(text, str) else [str(t) for t in text]
    tags = tuple(dict.fromkeys(w.strip().lstrip("#").lower() for w in words if w.strip().lstrip("#")))
    if len(tags) > MAX_TAGS:
        raise UserError(f"a run can have at most {MAX_TAGS} tags ({len(tags)} given)")
    long = [t for t in tags if len(t) > MAX_TAG_CHARS or not t.isprintable()]
    if long:
        raise UserError(f"the tag {printable(long[0][:MAX_TAG_CHARS])}... is not a tag: at most {MAX_TAG_CHARS} "
                        "printable characters, no spaces or commas")
    return tags


def read_notes(run: str | Path) -> tuple[RunNotes, str]:
    """The run's tags and note, and "" or why `notes.json` could not be used (then no tags, no note)."""
    path = Path(run) / NOTES_NAME
    try:
        raw = json.loads(read_regular(path, MAX_NOTES_BYTES, within=run))
    except FileNotFoundError:
        return RunNotes(), ""
    except OSError as e:
        return RunNotes(), f"cannot read {NOTES_NAME} ({e.strerror or type(e).__name__})"
    except FileRefused as e:
        return RunNotes(), str(e)
    except (ValueError, RecursionError):
        return RunNotes(), f"{NOTES_NAME} is not JSON"
    return _notes_of(raw)


def _notes_of(raw: Any) -> tuple[RunNotes, str]:
    if not isinstance(raw, dict):
        return RunNotes(), f"{NOTES_NAME} is not a tags-and-note record"
    tags, note = raw.get("tags", []), raw.get("note", "")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or not isinstance(note, str):
        return RunNotes(), f"{NOTES_NAME}: tags must be a list of texts and the note a text"
    try:
        parsed = parse_tags(tags)
    except UserError as e:
        return RunNotes(), f"{NOTES_NAME}: {e}"
    return RunNotes(parsed, note[:MAX_NOTE_CHARS]), ""


def write_notes(run: str | Path, notes: RunNotes) -> Path:
    """Replace the run's `notes.json` atomically (a run still training keeps writing its records meanwhile; its lock
    is neither taken nor looked at). A UserError (one line) when the folder is not a run or cannot be written."""
    from core.runs.history import is_run_folder

    run = Path(run)
    if not run.is_dir() or not is_run_folder(run):
        raise UserError(printable(f"{run} is not a run folder (no metrics.jsonl or config.json): tags and notes go "
                                  "in a run's folder"))
    if len(notes.note) > MAX_NOTE_CHARS:
        raise UserError(f"the note is {len(notes.note)} characters long; at most {MAX_NOTE_CHARS}")
    checked = RunNotes(parse_tags(list(notes.tags)), notes.note)
    try:
        return atomic_write_text(run / NOTES_NAME, checked.to_json())
    except OSError as e:
        raise UserError(printable(f"cannot save the tags and note of {run.name} ({e.strerror or type(e).__name__}); "
                                  "is the run folder writable?")) from None


def query_parts(query: str) -> tuple[list[str], list[str]]:
    """(words, tags) of a filter text: `tag:x` and `#x` are tags, everything else a word (lower case)."""
    words, tags = [], []
    for part in query.lower().split():
        if part.startswith("tag:") and len(part) > 4:
            tags.append(part[4:])
        elif part.startswith("#") and len(part) > 1:
            tags.append(part[1:])
        else:
            words.append(part)
    return words, tags


def matches(text: str, tags: tuple[str, ...], query: str) -> bool:
    """Whether a run (`text`: its row's cells, note included; `tags`) passes the filter `query`: every word in the
    text, every tag among its tags (a tag word matches a tag starting with it: "tag:base" finds "baseline")."""
    words, wanted = query_parts(query)
    text = text.lower()
    return (all(w in text for w in words)
            and all(any(t.startswith(w) for t in tags) for w in wanted))
