"""Durations as people type them: "90s", "10m", "2h", "1h30m", "1.5h" or "HH:MM:SS" (Slurm's --time, a search's
--budget)."""

from __future__ import annotations

import math
import re

from core.errors import UserError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|min|s|sec)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in `text` (UserError naming `what` and the accepted forms when it is not one)."""
    t = str(text).strip().lower().replace(" ", "")
    seconds: float | None = None
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}", t):          # MM:SS or HH:MM:SS
        seconds = 0.0
        for part in t.split(":"):
            seconds = seconds * 60 + int(part)
    elif t and _PART.sub("", t) == "":
        seconds = sum(float(value) * _UNIT_S[unit] for value, unit in _PART.findall(t))
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{what}: {text!r} is not a duration; write e.g. 90s, 10m, 2h, 1h30m or 01:30:00")
    return seconds
