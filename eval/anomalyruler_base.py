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


def main(argv: list[str] | None = None) -> None:
    """`python -m axr.eval.anomalyruler_base DATA_DIR`: the baseline as AnomalyRuler ships it (pandas' EWM,
    scikit-learn's AUC) on every video of a caption folder, pooled frame AUC printed: the process
    `axr eval bench cost` measures beside AXR's."""
    import sys

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from axr.eval.datasets.captions import load_caption_set

    videos, _ = load_caption_set((argv or sys.argv[1:])[0])
    labels, scores = [], []
    for video in videos:
        smoothed = pd.Series(flags(video.captions)).ewm(alpha=FIRST_ALPHA, adjust=True).mean()
        threshold = float(smoothed.mean())
        votes = (smoothed > threshold).astype(float)
        scores.extend(votes.ewm(alpha=threshold if threshold > 0 else 1e-7, adjust=True).mean())
        labels.extend(video.labels)
    print(f"{roc_auc_score(labels, scores):.4f}")


if __name__ == "__main__":
    main()
