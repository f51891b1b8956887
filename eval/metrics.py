"""Metrics over scored samples; scikit-learn computes what it already can."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)


def _auc(labels, scores) -> float | None:
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
        "auroc": _auc(labels, scores),
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
    per_video = {v: _auc(labels_by_video[v], scores_by_video[v]) for v in videos}
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


def task_metrics(records: list[dict], task: dict, book=None) -> dict:
    """Metrics of a run's prediction records (as eval/runner.py writes them) and its cost."""
    from axr.eval import verify

    ok = [r for r in records if r["status"] == "ok"]
    out: dict = {"errors": len(records) - len(ok), "cost": _cost(records)}
    if task["pipeline"].get("mode") in ("mcq", "mcq_from_verdict"):
        correct = [r["answer"] is not None and r["answer"] == r.get("gt_answer") for r in ok]
        out["mmad_accuracy"] = accuracy_by_group(correct, [r.get("question_type", "all") for r in ok])
        out["unanswered"] = sum(r["answer"] is None for r in ok)
        return out
    labelled = [r for r in ok if r.get("gt_label") is not None]
    verdicts = [r["verdict"] for r in labelled]
    out["unparsed_rate"] = sum(v["verdict"] == "unparsed" for v in verdicts) / len(verdicts) if verdicts else None
    if labelled and len({r["gt_label"] for r in labelled}) > 1:
        out.update(
            binary_metrics(
                [r["gt_label"] for r in labelled],
                [verify.consistent_score(v) for v in verdicts],
                predicted=[verify.predicted_label(v) == 1 for v in verdicts],
            )
        )
    elif labelled:
        out["accuracy"] = float(np.mean([verify.label_correct(r["verdict"], r["gt_label"]) for r in labelled]))
    typed = [r for r in labelled if r.get("gt_type")]
    out["type_accuracy"] = mean_or_none(
        [verify.same_type(r["verdict"].get("anomaly_type"), r["gt_type"]) for r in typed]
    )
    boxed = [r for r in labelled if r.get("gt_box")]
    out["box_iou"] = mean_or_none([verify.box_iou(verify.location_box(r["verdict"]), r["gt_box"]) for r in boxed])
    masked = [r for r in labelled if r.get("masks")]
    out["mask_hit"] = mean_or_none([verify.mask_hit(verify.location_box(r["verdict"]), r["masks"]) for r in masked])
    kinds = {rule.id: kind for kind in ("normal", "anomaly") for rule in book.rules(kind)} if book else None
    out["doubly_right"] = mean_or_none(
        [verify.doubly_right(r["verdict"], r["gt_label"], r.get("gt_type"), rule_kinds=kinds) for r in labelled]
    )
    if kinds:
        out["rule_consistency"] = mean_or_none([verify.rules_consistent(v, kinds) for v in verdicts])
    out["per_category_auroc"] = _per_category_auroc(labelled)
    return out


def _per_category_auroc(records: list[dict]) -> dict[str, float | None]:
    from axr.eval.verify import consistent_score

    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record.get("category") or "all", []).append(record)
    return {
        name: _auc([r["gt_label"] for r in rows], [consistent_score(r["verdict"]) for r in rows])
        for name, rows in sorted(groups.items())
    }


def _cost(records: list[dict]) -> dict:
    costs = [r.get("cost", {}) for r in records]
    return {
        "model_calls": sum(c.get("calls", 0) for c in costs),
        "tokens_in": sum(c.get("tokens_in", 0) for c in costs),
        "tokens_out": sum(c.get("tokens_out", 0) for c in costs),
        "seconds": round(sum(r.get("seconds", 0.0) for r in records), 2),
    }
