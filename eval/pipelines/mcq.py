"""mcq: MMAD-style multiple choice, one request per question (the image, its normal templates, the options)
-> an option letter. Accuracy per question type and their average, MMAD's headline."""

from __future__ import annotations

from axr.eval.metrics import accuracy_by_group
from axr.eval.pipelines.base import SamplePipeline
from axr.eval.records import PredictionRecord
from axr.eval.verify import choice_letter
from axr.reasoning.backends.base import Backend, Sampling, system, user
from axr.reasoning.prompting import render
from axr.reasoning.schema import ChoiceAnswer, Cost, Sample

METRICS = frozenset({"mmad_accuracy", "unanswered", "errors"})


class MCQPipeline(SamplePipeline):
    """One request per question; scored by accuracy per question type."""

    METRICS = METRICS

    def ask(self, ready, backend: Backend) -> list[PredictionRecord]:
        requests = []
        for sample, images, references in ready:
            prompt = render(
                "mcq",
                question=sample.meta["question"],
                options=sample.meta["options"],
                n_references=len(references),
                schema=ChoiceAnswer,
            )
            question = user("Answer the question about the last image.", [*references, *images])
            requests.append([system(prompt), question])
        completions = backend.generate(requests, Sampling(max_tokens=160), ChoiceAnswer)
        out = []
        for (sample, _, _), completion in zip(ready, completions, strict=True):
            options = sample.meta["options"]
            letter = completion.parsed.answer if completion.parsed else choice_letter(completion.text, options)
            record = answer_record(sample, letter if letter in options else None, completion.cost())
            record.raw = completion.text[:2000]
            out.append(record.failed(completion.error, "request") if completion.error else record)
        return out

    def metrics(self, records: list[PredictionRecord]) -> dict:
        correct = [r.answer is not None and r.answer == r.gt_answer for r in records]
        return {
            "mmad_accuracy": accuracy_by_group(correct, [r.question_type or "all" for r in records]),
            "unanswered": sum(r.answer is None for r in records),
        }


def answer_record(sample: Sample, letter: str | None, cost: Cost, verdict: dict | None = None) -> PredictionRecord:
    """A question's record: the letter chosen; a multiple-choice answer has no anomaly score."""
    return PredictionRecord.of(sample, answer=letter, cost=cost, verdict=verdict)
