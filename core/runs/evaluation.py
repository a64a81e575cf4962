"""A run folder's evaluation (`eval.json`, written by the experiment runner from `core.evaluation.evaluate`): read it
and name its numbers for tables (the runs report, the Runs panel's comparison).

Reading never raises: a missing or damaged eval.json is None, and a value that is not a finite number is left out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.files import FileRefused, read_regular

EVAL_FILE = "eval.json"
MAX_EVAL_BYTES = 1 << 20     # a few kB of numbers

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


def read_eval(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's eval.json as a dict, or None when it is missing or unreadable."""
    try:
        data = json.loads(read_regular(Path(run_dir) / EVAL_FILE, MAX_EVAL_BYTES, within=run_dir))
    except (OSError, ValueError, RecursionError, FileRefused):   # missing, damaged, a FIFO, too big
        return None
    return data if isinstance(data, dict) else None


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

