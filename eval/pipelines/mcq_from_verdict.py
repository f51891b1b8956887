"""mcq_from_verdict: MMAD questions answered from one verdict per image, instead of one call per question.

A Verdict already says whether the image is anomalous (Anomaly Detection), the defect type (Defect
Classification), where it is (Defect Localization), what it looks like (Defect Description) and why and how
it matters (Defect Analysis). Yes/no questions are read off the label; the others pick the option closest in
meaning (MiniLM cosine) to the matching part of the verdict. A question the verdict has no text for stays
unanswered (and counts as wrong).
"""

from __future__ import annotations

from axr.eval.pipelines.direct import ask_verdicts
from axr.eval.pipelines.mcq import MCQPipeline, answer_record
from axr.eval.records import PredictionRecord
from axr.eval.verify import predicted_label
from axr.reasoning.backends.base import Backend
from axr.reasoning.media import region_name
from axr.reasoning.schema import Cost, Verdict, location_box


class MCQFromVerdictPipeline(MCQPipeline):
    """Scored as mcq; asked one verdict per image."""

    def __init__(self, task):
        super().__init__(task)
        self.verdicts: dict[str, Verdict] = {}  # image -> its verdict, for the image's later questions
        self.embedder = None

    def ask(self, ready, backend: Backend) -> list[PredictionRecord]:
        """One verdict per image, each question answered from it; the question that paid for the call carries
        its cost."""
        fresh = {
            s.meta["image_key"]: (s, im, refs) for s, im, refs in ready if s.meta["image_key"] not in self.verdicts
        }
        if fresh:
            asked = ask_verdicts(list(fresh.values()), backend, self.book, self.task)
            self.verdicts.update(zip(fresh, asked, strict=True))
        if self.embedder is None and any(s.meta["question_type"].lower() != "anomaly detection" for s, _, _ in ready):
            from axr.reasoning.embedding import Embedder

            self.embedder = Embedder()
        out = []
        for sample, _, _ in ready:
            verdict = self.verdicts[sample.meta["image_key"]]
            letter = option_from_verdict(sample.meta["question_type"], sample.meta["options"], verdict, self.embedder)
            paid = fresh.get(sample.meta["image_key"], (None,))[0] is sample
            cost = verdict.cost() if paid else Cost()
            record = answer_record(sample, letter, cost, verdict.model_dump(mode="json"))
            failure = verdict.meta.get("request_error")
            out.append(record.failed(failure, "request") if failure else record)
        return out


def region_words(box: list[float] | None) -> str:
    if not box:
        return ""
    return region_name((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, centre="center")


def verdict_text(question_type: str, verdict: dict) -> str:
    """The part of the verdict that answers a question of this type."""
    rationale = verdict.get("rationale") or {}
    what, why, how = rationale.get("what", ""), rationale.get("why", ""), rationale.get("how", "")
    kind = question_type.lower()
    if "classification" in kind and "defect" in kind:
        return verdict.get("anomaly_type") or what
    if "localization" in kind:
        return " ".join(filter(None, [region_words(location_box(verdict)), what]))
    if "analysis" in kind and "defect" in kind:
        return " ".join(filter(None, [why, how]))
    return " ".join(filter(None, [what, *verdict.get("evidence", [])]))


def option_from_verdict(question_type: str, options: dict[str, str], verdict: Verdict | dict, embedder) -> str | None:
    verdict = verdict if isinstance(verdict, dict) else verdict.model_dump()
    label = predicted_label(verdict)
    if label is None:
        return None
    if question_type.lower() == "anomaly detection":
        wanted = "yes" if label == 1 else "no"
        return next((k for k, text in options.items() if text.strip().lower().startswith(wanted)), None)
    target = verdict_text(question_type, verdict)
    if not target.strip():
        return None
    letters = list(options)
    vectors = embedder.encode([target, *(options[k] for k in letters)])
    return letters[int((vectors[1:] @ vectors[0]).argmax())]
