"""Temporal smoothing of per-frame anomaly scores, and event spans.

A caption describes one frame, so single-frame flags flicker; anomalies in surveillance video last seconds.
Every function here takes the scores of one video in frame order.
"""

from __future__ import annotations

import numpy as np

# Scores are kept on a grid of 2^-20 (about 1e-6): far above the float32 noise of an embedding distance that is
# 0 in exact arithmetic (about 1e-7), far below any gap between scores that means something. Sums of such scores
# below 2^33 are exact in float64, so a centred mean of equal scores equals them and equal sums give equal means:
# no label hinges on rounding.
GRID = 2.0**-20


def on_grid(scores) -> np.ndarray:
    """Scores rounded to the nearest multiple of GRID."""
    return np.round(np.asarray(scores, dtype=float) / GRID) * GRID


def ema(scores, alpha: float = 0.33) -> np.ndarray:
    """Exponential moving average (causal); a NaN (a frame with no score) keeps the state as it was."""
    x = np.asarray(scores, dtype=float)
    out = np.empty_like(x)
    known = x[~np.isnan(x)]
    state = known[0] if len(known) else 0.0
    for i, value in enumerate(x):
        if not np.isnan(value):
            state = alpha * value + (1 - alpha) * state
        out[i] = state
    return out


def centred_mean(scores, window: int = 61) -> np.ndarray:
    """Mean over a centred window (edges padded with the edge value) of the scores that are not NaN (a frame
    with no score); 0 where the window has none; window is forced odd."""
    x = np.asarray(scores, dtype=float)
    known = ~np.isnan(x)
    if window <= 1 or len(x) == 0:
        return np.where(known, x, 0.0)
    half = window // 2
    ones = np.ones(2 * half + 1)
    sums = np.convolve(np.pad(np.where(known, x, 0.0), (half, half), mode="edge"), ones, mode="valid")
    counts = np.convolve(np.pad(known.astype(float), (half, half), mode="edge"), ones, mode="valid")
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def majority(flags, window: int = 11) -> np.ndarray:
    """Centred majority vote over binary flags."""
    return (centred_mean(np.asarray(flags, dtype=float), window) > 0.5).astype(int)


def smooth(scores, method: str = "mean", window: int = 61, alpha: float = 0.33) -> np.ndarray:
    """One entry point for the CLI and task files: none | mean | ema; scores in and out on the grid."""
    methods = {
        "none": np.nan_to_num,
        "mean": lambda x: centred_mean(x, window),
        "ema": lambda x: ema(x, alpha),
    }
    if method not in methods:
        raise ValueError(f"unknown smoothing {method!r}; choose none, mean or ema")
    return on_grid(methods[method](on_grid(scores)))


def event_spans(flags, min_length: int = 1, max_gap: int = 0) -> list[tuple[int, int]]:
    """[start, end] frame indices (inclusive) of runs of 1s at least `min_length` long; runs separated by at
    most `max_gap` 0s are one."""
    runs, start = [], None
    for i, flag in enumerate(list(flags) + [0]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if runs and start - runs[-1][1] - 1 <= max_gap:
                start = runs.pop()[0]
            runs.append((start, i - 1))
            start = None
    return [(a, b) for a, b in runs if b - a + 1 >= min_length]
