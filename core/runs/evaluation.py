"""A run folder's evaluation (`eval.json`, written by the experiment runner from `core.evaluation.evaluate`; and
`eval/*.json`, each written by `vae-explorer eval CHECKPOINT --save`): read it and name its numbers for tables (the
runs report, the Runs panel's comparison).

A saved evaluation is named by its checkpoint, split and a digest of its settings (`eval/best-test-1a2b3c4d5e.json`):
the same evaluation again replaces its own file (the same seed gives the same numbers), another one is a file beside
it. Its `eval_settings` say how it was made. `read_eval` reads eval.json, and where there is none the newest saved
evaluation of the test split, so a run evaluated with `eval --save` shows in the runs report and the Runs tab.

Reading never raises: a missing or damaged eval.json is None, and a value that is not a finite number is left out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
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


def _read_json(path: Path, run_dir: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_regular(path, MAX_EVAL_BYTES, within=run_dir))
    except (OSError, ValueError, RecursionError, FileRefused):   # missing, damaged, a FIFO, too big
        return None
    return data if isinstance(data, dict) else None


def read_eval(run_dir: str | Path, *, saved: bool = True) -> dict[str, Any] | None:
    """The run's eval.json as a dict; where there is none (and `saved`), its newest evaluation of the test split
    saved by `eval --save`; None when there is neither or it is unreadable."""
    result = _read_json(Path(run_dir) / EVAL_FILE, run_dir)
    if result is not None or not saved or (Path(run_dir) / EVAL_FILE).exists():
        return result
    return next((r for _, r in saved_evals(run_dir) if r.get("split") == "test"), None)


def saved_evals(run_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The evaluations `eval --save` kept in RUN/eval/, newest first (at most MAX_SAVED_READ); a damaged one is left
    out, never raised on."""
    folder = Path(run_dir) / SAVED_EVAL_DIR
    try:
        entries = [(e.stat(follow_symlinks=False).st_mtime_ns, Path(e.path)) for e in os.scandir(folder)
                   if e.name.endswith(".json") and not e.name.startswith(".")]
    except OSError:
        return []
    entries.sort(reverse=True)
    out = []
    for _, path in entries[:MAX_SAVED_READ]:
        result = _read_json(path, run_dir)
        if result is not None:
            out.append((path, result))
    return out


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


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

