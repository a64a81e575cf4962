"""Curve smoothing as TensorBoard does it: an exponential moving average started at zero and debiased.

TensorBoard's scalar dashboard (`classicSmoothing` in its line chart) smooths a series y with weight w in [0, 1):

    last = last * w + (1 - w) * y        (last starts at 0)
    smoothed = last / (1 - w ** n)       (n: finite points seen so far; the division removes the pull towards 0)

A non-finite value is shown as is and leaves the average alone; a constant series is returned unchanged (so
rounding cannot make a flat line wiggle). w = 0 is no smoothing; TensorBoard's slider stops at 0.999.

`ema_smooth` does a whole series at once (vectorised with scipy's lfilter: changing the slider re-smooths a 100,000
point curve in about a millisecond); `RunningEma` continues one point at a time, as a live curve grows.
"""

from __future__ import annotations

import math

import numpy as np

MAX_WEIGHT = 0.999


def _check(weight: float) -> float:
    weight = float(weight)
    if not 0.0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"smoothing weight must be within 0 and {MAX_WEIGHT}, got {weight}")
    return weight


def ema_smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased EMA of `values` (float64 copy; NaN/inf kept where they are)."""
    from scipy.signal import lfilter

    w = _check(weight)
    y = np.asarray(values, np.float64)
    out = y.copy()
    finite = np.isfinite(y)
    if w == 0.0 or not finite.any() or np.all(y == y[0]):
        return out
    f = y[finite]
    last = lfilter([1.0 - w], [1.0, -w], f)             # last_k = w * last_{k-1} + (1 - w) * y_k, last_0 = 0
    n = np.arange(1, len(f) + 1, dtype=np.float64)
    out[finite] = last / (1.0 - w ** n)
    return out


class RunningEma:
    """The same average, one value at a time (a live curve's newest point costs O(1))."""

    def __init__(self, weight: float) -> None:
        self.weight = _check(weight)
        self.reset()

    def reset(self) -> None:
        self._last = 0.0
        self._n = 0

    def resume(self, values: np.ndarray, smoothed: np.ndarray) -> None:
        """Continue after `values`, whose smoothing (by `ema_smooth` with this weight) was `smoothed`."""
        finite = np.isfinite(np.asarray(values, np.float64))
        self._n = int(finite.sum())
        self._last = float(smoothed[finite][-1]) * (1.0 - self.weight ** self._n) if self._n else 0.0

    def __call__(self, y: float) -> float:
        if not math.isfinite(y) or self.weight == 0.0:
            return y
        self._last = self._last * self.weight + (1.0 - self.weight) * y
        self._n += 1
        return self._last / (1.0 - self.weight ** self._n)
