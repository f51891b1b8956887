"""Metrics over scored samples, in NumPy: a caption run imports no scikit-learn (a second of start-up and
160 MiB for four formulas). `tests/test_metrics.py` checks each against scikit-learn's."""

from __future__ import annotations

import numpy as np


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) above each distinct score, from the highest down."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, labels = scores[order], labels[order]
    last_of_each_value = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positives = np.cumsum(labels)[last_of_each_value]
    return true_positives, last_of_each_value + 1 - true_positives


def auc(labels, scores) -> float | None:
    """Area under the ROC curve (ties count half); None unless both classes occur."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if not 0 < labels.sum() < len(labels):
        return None
    tps, fps = _curve(labels, scores)
    tpr, fpr = np.r_[0, tps] / tps[-1], np.r_[0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(labels, scores) -> float | None:
    """Sum over thresholds of (recall gained) x precision, as scikit-learn's average_precision_score."""
    curve = _precision_recall(labels, scores)
    return None if curve is None else float(np.sum(np.diff(np.r_[0, curve[1]]) * curve[0]))


def f1_max(labels, scores) -> float | None:
    """The best F1 over all thresholds on the scores (as anomaly-detection papers report it)."""
    curve = _precision_recall(labels, scores)
    if curve is None:
        return None
    precision, recall = curve
    return float(np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12)))


def _precision_recall(labels, scores) -> tuple[np.ndarray, np.ndarray] | None:
    """(precision, recall) above each distinct score; None without a positive label."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if not labels.any():
        return None
    tps, fps = _curve(labels, scores)
    return tps / (tps + fps), tps / tps[-1]


def binary_metrics(labels, scores, threshold: float = 0.5, predicted=None) -> dict[str, float | None]:
    """AUROC, AP, F1-max from the scores; accuracy / precision / recall / F1 / balanced accuracy of the
    predicted labels (given, or scores above `threshold`)."""
    labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    predicted = (scores > threshold).astype(int) if predicted is None else np.asarray(predicted, dtype=int)
    true_positives = int((predicted & labels).sum())
    precision = true_positives / max(int(predicted.sum()), 1)
    recall = true_positives / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    tpr = predicted[labels == 1].mean() if (labels == 1).any() else 0.0
    tnr = 1 - predicted[labels == 0].mean() if (labels == 0).any() else 0.0
    return {
        "auroc": auc(labels, scores),
        "ap": average_precision(labels, scores),
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
