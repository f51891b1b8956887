"""The one prediction record, whatever the pipeline mode (field names as anomalib's), and the typed journal
of a run's records (`predictions.jsonl`).

    sample_id, media | video + frame, gt_label, gt_type, gt_box, ...  what the sample says (ground truth)
    status        "ok" or "error": then `error` says why and `error_kind` which: "request" (the server gave no
                  answer: any rerun asks again) or "media" (the sample could not be read: --retry-errors)
    pred_score    the anomaly score the metrics rank by (0-1 for verdicts, the trigger scale for captions)
    pred_label    1 anomalous, 0 normal, None when there is no label (an unparsed answer, a question)
    verdict       the model's Verdict as a dict, or None where no model judged the sample
    answer        multiple-choice modes: the option letter chosen, or None (`raw`: the answer's text)
    trigger       caption frames: what the trigger stage saw (score, keyword hits, novelty, smoothed score)
    cost          model calls and tokens; `seconds` its share of the chunk's time

Metrics, judges and reports read only this file, so a record keeps what they need of its sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from axr.eval.verify import consistent_score, predicted_label
from axr.reasoning.journal import Journal
from axr.reasoning.schema import Cost, Sample, Verdict

KEPT_META = ("category", "question_type", "question", "options", "masks", "moments", "start")


class TriggerDetail(BaseModel):
    """A caption frame's trigger stage: its raw score, the rules whose keywords matched, MiniLM novelty, and
    the smoothed score before any model re-check was merged in (a rerun merges again from it), and the scoring
    stage's P(yes) for its caption."""

    model_config = ConfigDict(extra="forbid")

    score: float
    keyword_hits: dict[str, list[str]] = Field(default_factory=dict)
    novelty: float = 0.0
    smoothed: float
    model_score: float | None = None  # the scoring stage's P(yes) for the caption, when it ran


class PredictionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_id: str
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    error_kind: Literal["request", "media"] | None = None
    pred_score: float | None = None
    pred_label: int | None = None
    verdict: dict[str, Any] | None = None
    answer: str | None = None
    raw: str | None = None
    cost: Cost = Field(default_factory=Cost)
    seconds: float = 0.0
    # what the sample says
    media: str | None = None
    video: str | None = None
    frame: int | None = None
    gt_label: int | None = None
    gt_type: str | None = None
    gt_box: list[float] | None = None
    gt_span: list[float] | None = None
    gt_mask: str | None = None
    gt_rationale: dict[str, Any] | None = None
    gt_answer: str | None = None
    category: str | None = None
    question_type: str | None = None
    question: str | None = None
    options: dict[str, Any] | None = None
    masks: list[Any] | None = None
    moments: list[Any] | None = None
    start: float | None = None
    trigger: TriggerDetail | None = None

    @property
    def unit(self) -> str:
        """The sample this record belongs to: a caption frame's video, else the record's own sample."""
        return self.video if self.video is not None else self.sample_id

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def failed(self, error: str, kind: Literal["request", "media"]) -> PredictionRecord:
        """This record as an error: `request` (no answer: any rerun asks again) or `media` (--retry-errors)."""
        return self.model_copy(update={"status": "error", "error": error, "error_kind": kind})

    @classmethod
    def of(cls, sample: Sample, **fields: Any) -> PredictionRecord:
        """A record of `sample`, keeping what metrics and reports need of it, with the prediction's fields."""
        gt = sample.model_dump(include={"gt_label", "gt_type", "gt_box", "gt_span", "gt_mask", "gt_rationale"})
        kept = {k: v for k, v in sample.meta.items() if k in KEPT_META}
        if "answer" in sample.meta:
            kept["gt_answer"] = sample.meta["answer"]
        media = sample.image_path or sample.video_path
        return cls(sample_id=sample.sample_id, media=media, **gt, **kept, **fields)

    @classmethod
    def unreadable(cls, sample: Sample, error: str) -> PredictionRecord:
        return cls.of(sample, status="error", error=error, error_kind="media")

    @classmethod
    def judged(cls, sample: Sample, verdict: Verdict) -> PredictionRecord:
        """A sample judged by a verdict: scored and labelled by it; a request that got no answer is an error."""
        record = cls.of(sample, **verdict_fields(verdict.model_dump(mode="json")), cost=verdict.cost())
        failure = verdict.meta.get("request_error")
        return record.failed(failure, "request") if failure else record


def verdict_fields(verdict: dict[str, Any]) -> dict[str, Any]:
    return {"pred_score": consistent_score(verdict), "pred_label": predicted_label(verdict), "verdict": verdict}


class RecordJournal:
    """A run's predictions file as typed records: append-only, keyed by sample id, resumable (Journal)."""

    def __init__(self, path: Path):
        self.journal = Journal(path)
        self.records = {key: PredictionRecord.model_validate(r) for key, r in self.journal.records.items()}

    def append(self, records: Iterable[PredictionRecord], replace: bool = False) -> None:
        """Journal records whose keys are new (or, with `replace`, any: the later line wins)."""
        records = list(records)
        self.journal.append([r.model_dump(mode="json") for r in records], replace=replace)
        for record in records:
            if replace or record.sample_id not in self.records:
                self.records[record.sample_id] = record

    def put(self, records: Iterable[PredictionRecord], retried: set[str] = frozenset()) -> None:
        """Journal the records of freshly predicted samples; those of a `retried` sample replace all it had (a
        caption video's frames replace its error record)."""
        records = list(records)
        keys = {r.sample_id for r in records}
        stale = [key for key, r in self.records.items() if r.unit in retried and key not in keys] if retried else []
        if stale:
            self.journal.drop(stale)
            for key in stale:
                del self.records[key]
        self.append(records, replace=True)

    def compact(self) -> None:
        """One line per record again (after records were replaced)."""
        self.journal.compact()

    def units(self) -> dict[str, list[PredictionRecord]]:
        """The records of each sample (a caption video's frames, or one record), in journal order."""
        out: dict[str, list[PredictionRecord]] = {}
        for record in self.records.values():
            out.setdefault(record.unit, []).append(record)
        return out


def load_records(path: Path) -> list[PredictionRecord]:
    return list(RecordJournal(path).records.values())
