"""AnomalyRuler-base, the no-model baseline AnomalyRuler's paper reports, as its code ships
(`majority_smooth.py` of github Yuchen413/AnomalyRuler), so AXR's caption figures stand beside it on the same
videos:

1. a caption line is flagged when one of 20 fixed words (the same for every data set) occurs in it as a
   case-sensitive substring;
2. the flags are smoothed per video by pandas' `ewm(alpha=0.33, adjust=True).mean()`;
3. the video's threshold is the mean of that series; a frame votes 1 above it (the shipped majority window
   is 1, so the vote is this comparison);
4. the votes are smoothed again by `ewm(alpha=threshold, adjust=True)` (alpha 1e-7 for a zero threshold):
   that is the frame score.
"""

from __future__ import annotations

import numpy as np

KEYWORDS = (
    "trolley cart luggage bicycle scooter vehicles vans accident running jumping riding skateboarding scooting "
    "lying falling bending fighting pushing loitering climbing"
).split()
FIRST_ALPHA = 0.33


def ewm_adjusted(values, alpha: float) -> np.ndarray:
    """pandas `Series.ewm(alpha=alpha, adjust=True).mean()`: sum (1-a)^i x[t-i] / sum (1-a)^i."""
    decay = 1.0 - alpha
    out = np.empty(len(values))
    numerator = denominator = 0.0
    for t, value in enumerate(values):
        numerator = value + decay * numerator
        denominator = 1.0 + decay * denominator
        out[t] = numerator / denominator
    return out


def flags(captions: list[str]) -> np.ndarray:
    return np.array([float(any(word in line.strip() for word in KEYWORDS)) for line in captions])


def video_scores(captions: list[str]) -> np.ndarray:
    """AnomalyRuler-base's frame scores of one video, in frame order."""
    smoothed = ewm_adjusted(flags(captions), FIRST_ALPHA)
    threshold = float(smoothed.mean())
    votes = (smoothed > threshold).astype(float)
    return ewm_adjusted(votes, threshold if threshold > 0 else 1e-7)
