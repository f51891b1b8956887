"""direct: a sample's image (or clip frames, or rendered series) with k normal references and the optional
rule book -> one Verdict per sample from one VLM call. Scored by the verdict's label-consistent score."""

from __future__ import annotations

import numpy as np

from axr.eval import verify
from axr.eval.metrics import auc, binary_metrics, mean_or_none
from axr.eval.pipelines.base import SamplePipeline
from axr.eval.records import PredictionRecord
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Backend, Sampling
from axr.reasoning.deduction import DirectItem, direct_verdicts
from axr.reasoning.schema import location_box

METRICS = frozenset(
    {
        "auroc",
        "ap",
        "f1_max",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "balanced_accuracy",
        "type_accuracy",
        "box_iou",
        "mask_hit",
        "doubly_right",
        "rule_consistency",
        "unparsed_rate",
        "errors",
        "per_category_auroc",
    }
)


def ask_verdicts(ready, backend: Backend, book, task: TaskConfig) -> list:
    """One Verdict per (sample, query images, references), in one batched call."""
    items = [DirectItem(sample.sample_id, images, references) for sample, images, references in ready]
    sampling = Sampling(max_tokens=task.pipeline.max_tokens)
    return direct_verdicts(backend, items, book, domain=task.pipeline.domain, sampling=sampling)


class DirectPipeline(SamplePipeline):
    METRICS = METRICS

    def ask(self, ready, backend: Backend) -> list[PredictionRecord]:
        verdicts = ask_verdicts(ready, backend, self.book, self.task)
        return [PredictionRecord.judged(sample, v) for (sample, _, _), v in zip(ready, verdicts, strict=True)]

    def metrics(self, records: list[PredictionRecord]) -> dict:
        """Detection from pred_score/pred_label; type, box, mask, Doubly-Right and rule use from the verdicts."""
        labelled = [r for r in records if r.gt_label is not None]
        verdicts = [r.verdict for r in labelled]
        out: dict = {"unparsed_rate": mean_or_none([v["verdict"] == "unparsed" for v in verdicts])}
        if labelled and len({r.gt_label for r in labelled}) > 1:
            labels = [r.gt_label for r in labelled]
            predicted = [r.pred_label == 1 for r in labelled]
            out.update(binary_metrics(labels, [r.pred_score for r in labelled], predicted=predicted))
        elif labelled:
            out["accuracy"] = float(np.mean([r.pred_label == r.gt_label for r in labelled]))
        typed = [r for r in labelled if r.gt_type]
        out["type_accuracy"] = mean_or_none(
            [verify.same_type(r.verdict.get("anomaly_type"), r.gt_type) for r in typed]
        )
        boxed = [r for r in labelled if r.gt_box]
        out["box_iou"] = mean_or_none([verify.box_iou(location_box(r.verdict), r.gt_box) for r in boxed])
        masked = [r for r in labelled if r.masks]
        out["mask_hit"] = mean_or_none([verify.mask_hit(location_box(r.verdict), r.masks) for r in masked])
        book = self.book
        kinds = {rule.id: kind for kind in ("normal", "anomaly") for rule in book.rules(kind)} if book else None
        out["doubly_right"] = mean_or_none(
            [verify.doubly_right(r.verdict, r.gt_label, r.gt_type, rule_kinds=kinds) for r in labelled]
        )
        if kinds:
            out["rule_consistency"] = mean_or_none([verify.rules_consistent(v, kinds) for v in verdicts])
        out["per_category_auroc"] = _per_category_auroc(labelled)
        return out


def _per_category_auroc(records: list[PredictionRecord]) -> dict[str, float | None]:
    groups: dict[str, list[PredictionRecord]] = {}
    for record in records:
        groups.setdefault(record.category or "all", []).append(record)
    return {
        name: auc([r.gt_label for r in rows], [r.pred_score for r in rows]) for name, rows in sorted(groups.items())
    }
