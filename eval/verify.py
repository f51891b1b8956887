"""Pure checks of one answer against ground truth. Evaluation aggregates them; training rewards reuse them.

Every function takes plain values (a Verdict or its dict, ground-truth fields) and returns a bool or a
float; none calls a model or reads a file except `mask_hit`, which reads the mask it is given.

>>> box_iou([0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75])
0.14285714285714285
>>> same_type("Broken_Large", "broken large")
True
>>> choice_letter('{"reason": "a crack", "answer": "B"}', {"A": "Yes", "B": "No"})
'B'
>>> choice_letter("A or B", {"A": "Yes", "B": "No"}) is None
True
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

LABELS = {"normal": 0, "anomalous": 1}


def as_dict(verdict) -> dict[str, Any]:
    return verdict if isinstance(verdict, dict) else verdict.model_dump()


def predicted_label(verdict) -> int | None:
    """1 anomalous, 0 normal, None when the answer was unparsed."""
    return LABELS.get(as_dict(verdict).get("verdict"))


def label_correct(verdict, gt_label: int | None) -> bool:
    return gt_label is not None and predicted_label(verdict) == gt_label


def consistent_score(verdict) -> float:
    """The anomaly score made to agree with the label (small models say "normal" with score 1); 0.5 when the
    answer was unparsed or gave no score, which ranks it between the two classes."""
    answer = as_dict(verdict)
    score, label = answer.get("score"), predicted_label(answer)
    if score is None or label is None:
        return 0.5
    return max(score, 0.5) if label == 1 else min(score, 0.5)


def normalise_type(text: str | None) -> str:
    return re.sub(r"[\s_\-]+", " ", (text or "").strip().lower())


def same_type(predicted: str | None, truth: str | None) -> bool:
    """Defect types agree after case, spaces, underscores and hyphens are normalised."""
    return bool(truth) and normalise_type(predicted) == normalise_type(truth)


def box_iou(a: list[float] | None, b: list[float] | None) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes; 0 when either is missing or degenerate."""
    if not a or not b:
        return 0.0
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_hit(box: list[float] | None, mask_paths: list[str | Path]) -> bool:
    """The pointing game: the centre of the predicted box falls on a defect pixel of the masks."""
    if not box or not mask_paths:
        return False
    for path in mask_paths:
        mask = np.asarray(Image.open(path).convert("L")) > 0
        height, width = mask.shape
        x = min(int((box[0] + box[2]) / 2 * width), width - 1)
        y = min(int((box[1] + box[3]) / 2 * height), height - 1)
        if mask[y, x]:
            return True
    return False


def rules_consistent(verdict, rule_kinds: dict[str, str]) -> bool:
    """Cited rules exist in the book and agree with the verdict: an anomalous verdict cites at least one
    anomaly rule; a normal verdict cites no anomaly rule."""
    answer = as_dict(verdict)
    cited = answer.get("rules_matched") or []
    if any(rule not in rule_kinds for rule in cited):
        return False
    anomaly_cited = any(rule_kinds[rule] == "anomaly" for rule in cited)
    label = predicted_label(answer)
    return anomaly_cited if label == 1 else label == 0 and not anomaly_cited


def doubly_right(
    verdict,
    gt_label: int | None,
    gt_type: str | None = None,
    gt_rules: list[str] | None = None,
    rule_kinds: dict[str, str] | None = None,
) -> bool:
    """Right verdict for the right reason. For an anomaly: the type agrees with ground truth, or a cited rule
    is one of the ground-truth rules. For a normal sample: no anomaly rule is cited."""
    if not label_correct(verdict, gt_label):
        return False
    answer = as_dict(verdict)
    cited = answer.get("rules_matched") or []
    if gt_label == 0:
        return not any((rule_kinds or {}).get(rule) == "anomaly" for rule in cited)
    return same_type(answer.get("anomaly_type"), gt_type) or bool(set(cited) & set(gt_rules or []))


def choice_letter(text: str, options: dict[str, str]) -> str | None:
    """The one option letter an answer gives, read strictly: a JSON {"answer": X}, or a reply that is a single
    letter ("B", "B.", "(B)", "B: no"). Anything naming several letters, or a letter not offered, is None."""
    text = text.strip()
    letter = None
    try:
        data = json.loads(text)
        letter = data.get("answer") if isinstance(data, dict) else None
    except json.JSONDecodeError:
        match = re.fullmatch(r"\(?([A-E])\)?(?:[.:)]\s*.*)?", text, flags=re.DOTALL)
        letter = match.group(1) if match else None
    return letter if isinstance(letter, str) and letter in options else None
