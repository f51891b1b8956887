"""mcq: MMAD-style multiple choice, one request per question (the image, its normal templates, the options)
-> an option letter. Accuracy per question type and their average, MMAD's headline."""

from __future__ import annotations

from axr.eval.metrics import accuracy_by_group
from axr.eval.pipelines.direct import validate  # noqa: F401  (the same dataset checks)
from axr.eval.records import request_failed, sample_fields
from axr.eval.task_config import TaskConfig
from axr.eval.verify import choice_letter
from axr.reasoning.backends.base import Backend, Sampling, system, user
from axr.reasoning.prompting import render
from axr.reasoning.schema import ChoiceAnswer

METRICS = {"mmad_accuracy", "unanswered", "errors"}


def predict(ready, backend: Backend, book, task: TaskConfig, state: dict) -> dict[str, dict]:
    requests = []
    for sample, images, references in ready:
        prompt = render(
            "mcq",
            question=sample.meta["question"],
            options=sample.meta["options"],
            n_references=len(references),
            schema=ChoiceAnswer,
        )
        requests.append([system(prompt), user("Answer the question about the last image.", [*references, *images])])
    completions = backend.generate(requests, Sampling(max_tokens=160), ChoiceAnswer)
    out = {}
    for (sample, _, _), completion in zip(ready, completions, strict=True):
        options = sample.meta["options"]
        letter = completion.parsed.answer if completion.parsed else choice_letter(completion.text, options)
        record = answer_record(sample, letter if letter in options else None, completion.cost())
        record["raw"] = completion.text[:2000]
        if completion.error:
            request_failed(record, completion.error)
        out[sample.sample_id] = record
    return out


def answer_record(sample, letter: str | None, cost: dict, verdict: dict | None = None) -> dict:
    """A question's record: the letter chosen; a multiple-choice answer has no anomaly score."""
    return {
        **sample_fields(sample),
        "status": "ok",
        "pred_score": None,
        "pred_label": None,
        "verdict": verdict,
        "answer": letter,
        "cost": cost,
    }


def metrics(records: list[dict], task: TaskConfig, book) -> dict:
    correct = [r["answer"] is not None and r["answer"] == r.get("gt_answer") for r in records]
    return {
        "mmad_accuracy": accuracy_by_group(correct, [r.get("question_type", "all") for r in records]),
        "unanswered": sum(r["answer"] is None for r in records),
    }
