"""A run folder's evaluation (`eval.json`, written by the experiment runner from `core.evaluation.evaluate`; and
`eval/*.json`, each written by `vae-explorer eval CHECKPOINT --save`): read it and name its numbers for tables (the
runs report, the Runs panel's comparison).

A saved evaluation is named by its checkpoint, split and a digest of its settings (`eval/best-test-1a2b3c4d5e.json`):
the same evaluation again replaces its own file (the same seed gives the same numbers), another one is a file beside
it. Its `eval_settings` say how it was made. `read_eval` reads eval.json, and where there is none the newest saved
evaluation of the test split, so a run evaluated with `eval --save` shows in the runs report and the Runs tab.

Reading never raises: a missing or damaged eval.json is None, and a value that is not a finite number is left out.
`read_run_eval` also says which file the numbers came from and, in one line, why an evaluation file that is there
could not be read (the `runs` table and its CSV, the runs report, the Runs tab's comparison, the experiment report,
`experiment --from`'s table per source and the Experiments tab's table show it; the other readers take `read_eval`'s
result alone).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.files import FileRefused, atomic_write_text, printable, read_regular

EVAL_FILE = "eval.json"
SAVED_EVAL_DIR = "eval"      # `eval --save`: RUN/eval/<checkpoint>-<split>-<settings digest>.json
MAX_EVAL_BYTES = 1 << 20     # a few kB of numbers
MAX_SAVED_READ = 100         # saved evaluations looked at, newest first (a folder of thousands is not all read)

# (key in eval.json, label): what a table of evaluated runs shows, in this order.
EVAL_METRICS = (
    ("elbo", "test ELBO"),
    ("ssim", "SSIM (reconstructions)"),
    ("conditional_accuracy", "conditional accuracy"),
    ("fid_like", "Fréchet score (judge)"),
    ("fid", "FID (Inception)"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("sharpness", "sharpness"),
    ("hole_score", "hole score"),
    ("codebook_perplexity", "codebook perplexity"),
    ("prior_bits_per_code", "code prior bits/code"),
)
# Sample metrics that evaluate() also reports for a second source of latents ("density_precision" ...).
SOURCE_METRICS = ("conditional_accuracy", "fid_like", "precision", "recall", "sharpness", "hole_score")


@dataclass(frozen=True)
class RunEval:
    """A run's evaluation as the run history reads it. `result`: the evaluation (None: there is none or it could not
    be read); `source`: the file it came from; `problem`: one line on an evaluation file that is there but was not
    read ("eval.json is not valid JSON ..."), None when nothing was wrong."""

    result: dict[str, Any] | None
    source: Path | None = None
    problem: str | None = None


def _read_json(path: Path, run_dir: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object in `path`, None) or (None, why it was not read: None when there is no such file)."""
    name = path.relative_to(run_dir).as_posix() if path.is_relative_to(run_dir) else path.name
    try:
        data = json.loads(read_regular(path, MAX_EVAL_BYTES, within=run_dir))
    except (FileNotFoundError, NotADirectoryError):   # no such file (or the "run" is a file: said as such elsewhere)
        return None, None
    except FileRefused as e:                  # a FIFO, a device, too big, a link out of the run folder
        said = str(e)                         # "NAME is ...": named here as the run folder names it
        return None, name + said[len(path.name):] if said.startswith(path.name) else f"{name}: {said}"
    except OSError as e:
        return None, f"{name} cannot be read ({e.strerror or type(e).__name__})"
    except (ValueError, RecursionError):      # cut short, not JSON, not UTF-8, nested past any evaluation's depth
        return None, f"{name} is not valid JSON (cut short or damaged)"
    if not isinstance(data, dict):
        return None, f"{name} holds a JSON {type(data).__name__}, not an evaluation"
    return data, None


def read_eval(run_dir: str | Path, *, saved: bool = True) -> dict[str, Any] | None:
    """The run's eval.json as a dict; where there is none (and `saved`), its newest evaluation of the test split
    saved by `eval --save`; None when there is neither or it is unreadable."""
    return read_run_eval(run_dir, saved=saved).result


def read_run_eval(run_dir: str | Path, *, saved: bool = True) -> RunEval:
    """`read_eval`'s evaluation with the file it came from and, where an evaluation file could not be read, why: a
    damaged eval.json (it stays the run's evaluation: no saved one stands in for it), or a damaged saved one newer
    than the one read (or in place of any). Never raises."""
    path = Path(run_dir) / EVAL_FILE
    result, problem = _read_json(path, run_dir)
    if result is not None or problem is not None or not saved:
        return RunEval(result, path if result is not None else None, problem)
    damaged = []
    for saved_path, saved_result, why in _saved_files(run_dir):
        if why is not None:
            damaged.append(why)
        elif saved_result is not None and saved_result.get("split") == "test":
            return RunEval(saved_result, saved_path, _problems(damaged))
    return RunEval(None, None, _problems(damaged))


def _problems(problems: list[str]) -> str | None:
    if len(problems) > 1:
        return f"{problems[0]}; {len(problems) - 1} more saved evaluation(s) of the run not read either"
    return problems[0] if problems else None


def _saved_files(run_dir: str | Path) -> list[tuple[Path, dict[str, Any] | None, str | None]]:
    """(path, evaluation, why it was not read) of each file in RUN/eval/, newest first (at most MAX_SAVED_READ)."""
    folder = Path(run_dir) / SAVED_EVAL_DIR
    try:
        entries = [(e.stat(follow_symlinks=False).st_mtime_ns, Path(e.path)) for e in os.scandir(folder)
                   if e.name.endswith(".json") and not e.name.startswith(".")]
    except OSError:
        return []
    entries.sort(reverse=True)
    return [(path, *_read_json(path, run_dir)) for _, path in entries[:MAX_SAVED_READ]]


def saved_evals(run_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The evaluations `eval --save` kept in RUN/eval/, newest first (at most MAX_SAVED_READ); a damaged one is left
    out, never raised on."""
    return [(path, result) for path, result, _ in _saved_files(run_dir) if result is not None]


def saved_eval_path(run_dir: str | Path, checkpoint: str | Path, split: str, settings: dict[str, Any]) -> Path:
    """Where `eval --save` keeps the evaluation of `checkpoint` on `split` made with `settings` (JSON-ready)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return Path(run_dir) / SAVED_EVAL_DIR / f"{Path(checkpoint).stem}-{split}-{digest}.json"


def save_eval(run_dir: str | Path, result: dict[str, Any], checkpoint: str | Path,
              settings: dict[str, Any]) -> Path:
    """Write `result` (with its `eval_settings` and `saved_at`) to its saved_eval_path, atomically; returns the path.
    The caller holds the run folder's lock (core.training.run_folder: one writer per run folder)."""
    path = saved_eval_path(run_dir, checkpoint, str(result.get("split")), settings)
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps({**result, "eval_settings": settings, "saved_at": time.time()},
                                           indent=2))
    except OSError as e:
        raise UserError(printable(f"cannot save the evaluation in {path.parent} ({e.strerror or type(e).__name__})"
                                  "; the numbers are printed above")) from None
    return path


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)       # an integer of hundreds of digits (valid JSON) is no float: OverflowError
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def eval_numbers(result: dict[str, Any] | None) -> dict[str, float]:
    """label -> value of each metric the evaluation holds, in EVAL_METRICS order, then those of other sources of
    latents (e.g. "precision, z from density")."""
    if not result:
        return {}
    out = {label: v for key, label in EVAL_METRICS if (v := _number(result.get(key))) is not None}
    # Every source of samples has a Fréchet score: "density_fid_like" names the source "density".
    prefixes = sorted(k[:-len("_fid_like")] for k in result if k.endswith("_fid_like"))
    for prefix in prefixes:
        for key, label in EVAL_METRICS:
            if key in SOURCE_METRICS and (v := _number(result.get(f"{prefix}_{key}"))) is not None:
                out[f"{label}, z from {prefix}"] = v
    return out


MAX_CLASSES = 1000   # a per-class list longer than any dataset's classes is damage, not data


def hole_scores(result: dict[str, Any] | None) -> list[tuple[str, float, list[float | None]]]:
    """(source of z, hole score, per class: a share in [0, 1] or None) of each source the evaluation measured, the
    first source ("samples_from", else "prior") first; values that are not shares are left out, never raised on."""
    if not result:
        return []
    first = result.get("samples_from") if isinstance(result.get("samples_from"), str) else "prior"
    prefixes = [("", first)] + sorted((k[:-len("hole_score")], k[:-len("_hole_score")]) for k in result
                                      if k.endswith("_hole_score"))
    out = []
    for prefix, source in prefixes:
        score = _number(result.get(f"{prefix}hole_score"))
        if score is None or not 0 <= score <= 1:
            continue
        per_class = result.get(f"{prefix}hole_score_per_class")
        per_class = per_class if isinstance(per_class, list) and len(per_class) <= MAX_CLASSES else []
        shares = [v if v is not None and 0 <= v <= 1 else None for v in map(_number, per_class)]
        out.append((source, score, shares))
    return out

