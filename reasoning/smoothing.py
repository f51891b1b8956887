"""Temporal smoothing of per-frame anomaly scores, and event spans.

A caption describes one frame, so single-frame flags flicker; anomalies in surveillance video last seconds.
Every function here takes the scores of one video in frame order.
"""

from __future__ import annotations

import numpy as np


def ema(scores, alpha: float = 0.33) -> np.ndarray:
    """Exponential moving average (causal)."""
    x = np.asarray(scores, dtype=float)
    out = np.empty_like(x)
    state = x[0] if len(x) else 0.0
    for i, value in enumerate(x):
        state = alpha * value + (1 - alpha) * state
        out[i] = state
    return out


def centred_mean(scores, window: int = 61) -> np.ndarray:
    """Mean over a centred window (edges padded with the edge value); window is forced odd."""
    x = np.asarray(scores, dtype=float)
    if window <= 1 or len(x) == 0:
        return x.copy()
    half = window // 2
    padded = np.pad(x, (half, half), mode="edge")
    return np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")


def majority(flags, window: int = 11) -> np.ndarray:
    """Centred majority vote over binary flags."""
    return (centred_mean(np.asarray(flags, dtype=float), window) > 0.5).astype(int)


def smooth(scores, method: str = "mean", window: int = 61, alpha: float = 0.33) -> np.ndarray:
    """One entry point for the CLI and task files: none | mean | ema."""
    if method == "none":
        return np.asarray(scores, dtype=float)
    if method == "mean":
        return centred_mean(scores, window)
    if method == "ema":
        return ema(scores, alpha)
    raise ValueError(f"unknown smoothing {method!r}; choose none, mean or ema")


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
