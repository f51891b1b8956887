"""Metrics over scored samples; scikit-learn computes what it already can."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)


def auc(labels, scores) -> float | None:
    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None


def f1_max(labels, scores) -> float | None:
    """The best F1 over all thresholds on the scores (as anomaly-detection papers report it)."""
    labels = np.asarray(labels, dtype=int)
    if not labels.any():
        return None
    precision, recall, _ = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def binary_metrics(labels, scores, threshold: float = 0.5, predicted=None) -> dict[str, float | None]:
    """AUROC, AP, F1-max from the scores; accuracy / precision / recall / F1 / balanced accuracy of the
    predicted labels (given, or scores above `threshold`)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    predicted = (scores > threshold).astype(int) if predicted is None else np.asarray(predicted, dtype=int)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average="binary", zero_division=0)
    tpr = predicted[labels == 1].mean() if (labels == 1).any() else 0.0
    tnr = 1 - predicted[labels == 0].mean() if (labels == 0).any() else 0.0
    return {
        "auroc": auc(labels, scores),
        "ap": float(average_precision_score(labels, scores)) if labels.any() else None,
        "f1_max": f1_max(labels, scores),
        "accuracy": float((predicted == labels).mean()),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "balanced_accuracy": float((tpr + tnr) / 2),
        "threshold": float(threshold),
    }


def frame_metrics(labels_by_video: dict[str, list[int]], scores_by_video: dict[str, list[float]], threshold: float):
    """Frame-level metrics pooled over all frames, plus the mean AUC over videos that have both classes."""
    videos = sorted(labels_by_video)
    labels = np.concatenate([labels_by_video[v] for v in videos])
    scores = np.concatenate([scores_by_video[v] for v in videos])
    pooled = binary_metrics(labels, scores, threshold)
    per_video = {v: auc(labels_by_video[v], scores_by_video[v]) for v in videos}
    scored = [a for a in per_video.values() if a is not None]
    return {
        "frame_auc_pooled": pooled.pop("auroc"),
        "frame_auc_per_video_mean": float(np.mean(scored)) if scored else None,
        "videos_with_both_classes": len(scored),
        **{f"frame_{k}": v for k, v in pooled.items()},
        "frames": int(len(labels)),
        "anomalous_share": float(labels.mean()),
        "per_video_auc": per_video,
    }


def accuracy_by_group(correct: list[bool], groups: list[str]) -> dict[str, float]:
    """Accuracy per group (e.g. MMAD question type) and `average`, the mean over groups (MMAD's headline)."""
    by_group: dict[str, list[bool]] = {}
    for ok, group in zip(correct, groups, strict=True):
        by_group.setdefault(group, []).append(ok)
    result = {group: float(np.mean(values)) for group, values in sorted(by_group.items())}
    if result:
        result["average"] = float(np.mean(list(result.values())))
    return result


def mean_or_none(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
