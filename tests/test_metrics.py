"""AXR's NumPy metrics give scikit-learn's figures (ties, one class, binary labels)."""

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
)

from axr.eval.metrics import auc, average_precision, binary_metrics, f1_max


@pytest.mark.parametrize("seed", range(5))
def test_numpy_metrics_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(300) < 0.3).astype(int)
    scores = np.round(rng.random(300) + 0.4 * labels, 1)  # rounded: many ties
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert average_precision(labels, scores) == pytest.approx(average_precision_score(labels, scores))
    precision, recall, _ = precision_recall_curve(labels, scores)
    assert f1_max(labels, scores) == pytest.approx(
        np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12))
    )
    metrics = binary_metrics(labels, scores, threshold=0.7)
    p, r, f, _ = precision_recall_fscore_support(labels, (scores > 0.7).astype(int), average="binary", zero_division=0)
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx((p, r, f))


def test_one_class_has_no_auc_and_nothing_predicted_has_zero_precision():
    assert auc([0, 0, 0], [0.1, 0.2, 0.3]) is None and auc([1, 1], [0.5, 0.5]) is None
    assert average_precision([0, 0], [0.1, 0.2]) is None
    metrics = binary_metrics([1, 0, 1], [0.1, 0.2, 0.3], threshold=0.9)
    assert metrics["precision"] == 0.0 and metrics["recall"] == 0.0 and metrics["f1"] == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
