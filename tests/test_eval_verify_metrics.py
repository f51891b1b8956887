"""Per-sample checks (eval/verify.py), metrics and text metrics against hand-computed cases."""

import doctest

import numpy as np
import pytest
from PIL import Image

from axr.eval import text_metrics, verify
from axr.eval.metrics import accuracy_by_group, binary_metrics, f1_max
from axr.eval.text_metrics import bleu, rouge_l


def _verdict(label="anomalous", score=0.9, **extra):
    return {"verdict": label, "score": score, "rules_matched": [], "rationale": {}, **extra}


@pytest.mark.parametrize("module", [verify, text_metrics])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_consistent_score_and_labels():
    assert verify.consistent_score(_verdict("normal", 1.0)) == 0.5  # "normal" with score 1 is made consistent
    assert verify.consistent_score(_verdict("anomalous", 0.2)) == 0.5
    assert verify.consistent_score(_verdict("anomalous", 0.8)) == 0.8
    assert verify.consistent_score({"verdict": "unparsed", "score": None}) == 0.5
    assert verify.label_correct(_verdict("normal", 0.1), 0) and not verify.label_correct({"verdict": "unparsed"}, 0)


def test_box_iou_and_mask_hit(tmp_path):
    assert verify.box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert verify.box_iou([0, 0, 0.5, 1], [0.5, 0, 1, 1]) == 0.0
    assert verify.box_iou([0, 0, 0.5, 0.5], None) == 0.0
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[0:5, 5:10] = 255  # top-right quarter
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert verify.mask_hit([0.5, 0.0, 1.0, 0.5], [tmp_path / "m.png"])
    assert not verify.mask_hit([0.0, 0.5, 0.5, 1.0], [tmp_path / "m.png"])
    assert not verify.mask_hit(None, [tmp_path / "m.png"])


def test_rule_consistency_and_doubly_right():
    kinds = {"n1": "normal", "a1": "anomaly"}
    assert verify.rules_consistent(_verdict(rules_matched=["a1"]), kinds)
    assert not verify.rules_consistent(_verdict(rules_matched=["n1"]), kinds)  # anomalous without an anomaly rule
    assert not verify.rules_consistent(_verdict(rules_matched=["a9"]), kinds)  # an invented rule
    assert not verify.rules_consistent(_verdict("normal", 0.1, rules_matched=["a1"]), kinds)
    assert verify.rules_consistent(_verdict("normal", 0.1, rules_matched=["n1"]), kinds)
    right_type = _verdict(anomaly_type="Broken large")
    assert verify.doubly_right(right_type, 1, "broken_large")
    assert not verify.doubly_right(_verdict(anomaly_type="scratch"), 1, "broken_large")  # right verdict, wrong reason
    assert verify.doubly_right(_verdict(rules_matched=["a1"]), 1, "x", gt_rules=["a1"])
    assert not verify.doubly_right(right_type, 0, "broken_large")
    assert not verify.doubly_right(_verdict("normal", 0.1, rules_matched=["a1"]), 0, rule_kinds=kinds)


@pytest.mark.parametrize(
    "text, letter",
    [
        ('{"reason": "x", "answer": "B"}', "B"),
        ("B", "B"),
        ("(A)", "A"),
        ("A. Yes", "A"),
        ("B: no crack", "B"),
        ("A or B", None),
        ("C", None),
        ('{"answer": "C"}', None),
        ("", None),
        ("The answer is A", None),
    ],
)
def test_choice_letters_are_read_strictly(text, letter):
    assert verify.choice_letter(text, {"A": "Yes", "B": "No"}) == letter


def test_binary_metrics_by_hand():
    labels, scores = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]
    metrics = binary_metrics(labels, scores, threshold=0.5)
    assert metrics["auroc"] == 0.75
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["accuracy"] == 0.5
    # F1-max: threshold 0.4 flags 0.4, 0.6, 0.9 -> P 2/3, R 1 -> F1 0.8
    assert f1_max(labels, scores) == pytest.approx(0.8)
    given = binary_metrics(labels, scores, predicted=[0, 0, 1, 1])
    assert given["accuracy"] == 1.0 and given["auroc"] == 0.75


def test_accuracy_by_group_averages_the_groups():
    result = accuracy_by_group([True, False, True, True], ["det", "det", "cls", "cls"])
    assert result == {"cls": 1.0, "det": 0.5, "average": 0.75}


def test_text_metrics_by_hand():
    assert rouge_l("a b c", "x y z") == 0.0
    assert rouge_l("a b c d", "a c") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    # unigrams 2/2; the bigram "a c" is not in the reference: (0+1)/(1+1); brevity exp(1 - 3/2)
    assert bleu("a c", "a b c") == pytest.approx(np.exp(1 - 1.5) * np.sqrt(0.5))
    assert bleu("a b", "a b c") == pytest.approx(np.exp(1 - 1.5))
