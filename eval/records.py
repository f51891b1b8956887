"""The one shape of a prediction record, whatever the pipeline mode (field names as anomalib's):

    sample_id, media | video + frame, gt_label, gt_type, gt_box, ...  what the sample says (ground truth)
    status        "ok" or "error": then `error` says why and `error_kind` which: "request" (the server gave no
                  answer: any rerun asks again) or "media" (the sample could not be read: --retry-errors)
    pred_score    the anomaly score the metrics rank by (0-1 for verdicts, the trigger scale for captions)
    pred_label    1 anomalous, 0 normal, None when there is no label (an unparsed answer, a question)
    verdict       the model's Verdict as a dict, or None where no model judged the sample
    answer        multiple-choice modes: the option letter chosen, or None
    cost          {calls, tokens_in, tokens_out}; `seconds` its share of the chunk's time

Metrics, judges and reports read only this file, so a record keeps what they need of its sample.
"""

from __future__ import annotations

from typing import Any

from axr.eval.verify import consistent_score, predicted_label
from axr.reasoning.schema import Sample, Verdict

KEPT_META = ("category", "question_type", "question", "options", "masks", "moments", "start")
NO_COST = {"calls": 0, "tokens_in": 0, "tokens_out": 0}


def sample_fields(sample: Sample) -> dict[str, Any]:
    """What a record keeps of its sample."""
    gt = sample.model_dump(include={"gt_label", "gt_type", "gt_box", "gt_span", "gt_mask", "gt_rationale"})
    media = sample.image_path or sample.video_path
    keep = {k: v for k, v in sample.meta.items() if k in KEPT_META}
    if "answer" in sample.meta:
        keep["gt_answer"] = sample.meta["answer"]
    return {"sample_id": sample.sample_id, "media": media, **gt, **keep}


def error_record(sample: Sample, error: str) -> dict[str, Any]:
    empty = {"pred_score": None, "pred_label": None, "verdict": None, "cost": dict(NO_COST)}
    return {**sample_fields(sample), "status": "error", "error": error, "error_kind": "media", **empty}


def request_failed(record: dict[str, Any], error: str) -> dict[str, Any]:
    """Mark a record whose request got no answer: an error, retried by any rerun, never a model answer."""
    record.update(status="error", error=error, error_kind="request")
    return record


def verdict_record(sample: Sample, verdict: Verdict, cost: dict[str, int] | None = None) -> dict[str, Any]:
    """A sample judged by a verdict: scored and labelled by it; a request that got no answer is an error."""
    record = {
        **sample_fields(sample),
        "status": "error" if verdict.meta.get("request_error") else "ok",
        **verdict_fields(verdict.model_dump(mode="json")),
        "cost": verdict.cost() if cost is None else cost,
    }
    if verdict.meta.get("request_error"):
        request_failed(record, verdict.meta["request_error"])
    return record


def verdict_fields(verdict: dict[str, Any]) -> dict[str, Any]:
    return {"pred_score": consistent_score(verdict), "pred_label": predicted_label(verdict), "verdict": verdict}


def upgraded(record: dict[str, Any]) -> dict[str, Any]:
    """A record written before this shape (earlier AXR 0.1.0 runs, still resumable): scored from its verdict,
    a caption frame's `recheck` renamed `verdict`."""
    if "recheck" in record:
        record["verdict"] = record.pop("recheck")
    if "pred_score" not in record:
        record.update(verdict_fields(record["verdict"]) if record.get("verdict") else {"pred_score": None})
    record.setdefault("pred_label", None)
    record.setdefault("verdict", None)
    return record
