"""GRPO rewards in TRL's contract, built on `eval/verify.py` so training and evaluation judge alike.

Each reward is `f(completions, **columns) -> list[float | None]`: `completions` are TRL's (plain strings, or
conversational `[{"role": "assistant", "content": ...}]`), the dataset's columns arrive as keyword lists,
and None means "does not apply to this row" (TRL leaves it out of the weighted sum).

An answer is read strictly (`parse_answer`): the whole completion is one Verdict JSON object, or exactly one
`<think>...</think><answer>{json}</answer>` pair with nothing else around it. Two answers, an empty answer,
prose around the JSON, Markdown fences or extra keys all score 0 on format and leave the others nothing to
reward, so a policy cannot hedge or pad its way to a score.

>>> good = '{"verdict": "anomalous", "score": 0.9, "anomaly_type": "scratch"}'
>>> format_reward([good, "anomalous!"])
[1.0, 0.0]
>>> verdict_reward([good, good], label=[1, 0])
[1.0, 0.0]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from pydantic import ValidationError

from axr.eval import verify
from axr.reasoning.schema import VerdictAnswer, location_box

THINK_ANSWER = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)


class RewardError(ValueError):
    """A recipe names an unknown reward, or the dataset lacks a column a reward needs."""


def completion_text(completion) -> str:
    """The text of a completion in either of TRL's formats."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if block.get("type") == "text")
    return content or ""


def parse_answer(text: str) -> dict | None:
    """The Verdict the text gives, read strictly, or None.

    >>> parse_answer('<think>a dark line</think><answer>{"verdict": "normal", "score": 0.1}</answer>')["verdict"]
    'normal'
    >>> parse_answer('<answer>{"verdict": "normal", "score": 0.1}</answer><answer>{}</answer>') is None
    True
    """
    match = THINK_ANSWER.fullmatch(text)
    if match:
        body = match.group(2)
        if "<answer>" in body or "<think>" in match.group(1) or not body.strip():
            return None
    elif "<answer>" in text or "<think>" in text:
        return None  # tags, but not exactly one think/answer pair
    else:
        body = text
    try:
        data = json.loads(body)
        return VerdictAnswer.model_validate(data).model_dump() if isinstance(data, dict) else None
    except (json.JSONDecodeError, ValidationError):
        return None


def _answers(completions) -> list[dict | None]:
    return [parse_answer(completion_text(c)) for c in completions]


def format_reward(completions, **_) -> list[float]:
    """1 when the completion is one valid Verdict (bare JSON or one think/answer pair), else 0."""
    return [float(answer is not None) for answer in _answers(completions)]


def verdict_reward(completions, label, **_) -> list[float | None]:
    """1 when the verdict matches the label (1 anomalous, 0 normal), else 0; None for an unlabelled row.

    >>> verdict_reward(['{"verdict": "normal", "score": 0.2}'], label=[None])
    [None]
    """
    return [
        None if y is None else float(a is not None and verify.label_correct(a, y))
        for a, y in zip(_answers(completions), label, strict=True)
    ]


def type_reward(completions, label, anomaly_type, **_) -> list[float | None]:
    """For an anomaly with a known type: 1 when the named type agrees. For a normal row: 1 when no type is
    named. None when the type is unknown.

    >>> type_reward(['{"verdict": "anomalous", "score": 1, "anomaly_type": "Broken_large"}'], [1], ["broken large"])
    [1.0]
    """
    out = []
    for answer, y, truth in zip(_answers(completions), label, anomaly_type, strict=True):
        if answer is None:
            out.append(0.0 if (y == 0 or truth) else None)
        elif y == 0:
            out.append(float(not answer.get("anomaly_type")))
        else:
            out.append(float(verify.same_type(answer.get("anomaly_type"), truth)) if truth else None)
    return out


def iou_reward(completions, box, **_) -> list[float | None]:
    """IoU of the answer's box with the ground-truth box; None when the row has no box.

    >>> iou_reward(['{"verdict": "anomalous", "score": 1, "location": {"x0": 0, "y0": 0, "x1": 0.5, "y1": 1}}'],
    ...            box=[[0, 0, 1, 1]])
    [0.5]
    """
    return [
        None if not truth else verify.box_iou(location_box(a) if a else None, truth)
        for a, truth in zip(_answers(completions), box, strict=True)
    ]


def rules_reward(completions, rule_kinds, **_) -> list[float | None]:
    """1 when the cited rules exist in the row's rule book and agree with the verdict (see
    `axr.eval.verify.rules_consistent`); None for a row without a rule book. `rule_kinds` is JSON {id: kind}."""
    out = []
    for answer, kinds in zip(_answers(completions), rule_kinds, strict=True):
        kinds = json.loads(kinds) if isinstance(kinds, str) else kinds
        out.append(None if not kinds else float(answer is not None and verify.rules_consistent(answer, kinds)))
    return out


def answer_reward(completions, label, **_) -> list[float | None]:
    """One-token scorers: 1 when the answer's first word is yes for an anomalous row and no for a normal one.

    >>> answer_reward(["Yes", " no", "maybe"], label=[1, 1, 0])
    [1.0, 0.0, 0.0]
    """
    words = [(completion_text(c).strip().split() or [""])[0].strip(".,!").lower() for c in completions]
    return [None if y is None else float(word == ("yes" if y else "no")) for word, y in zip(words, label, strict=True)]


def length_reward(completions, max_chars: int = 1200, **_) -> list[float]:
    """1 up to `max_chars` characters, falling linearly to 0 at twice that: rambling costs.

    >>> length_reward(["x" * 100, "x" * 1800, "x" * 5000])
    [1.0, 0.5, 0.0]
    """
    lengths = [len(completion_text(c)) for c in completions]
    return [float(min(max(2 - n / max_chars, 0.0), 1.0)) for n in lengths]


REWARDS: dict[str, Callable] = {
    "format": format_reward,
    "verdict": verdict_reward,
    "type": type_reward,
    "iou": iou_reward,
    "rules": rules_reward,
    "length": length_reward,
    "answer": answer_reward,
}
REQUIRED_COLUMNS = {
    "answer": ["label"],
    "verdict": ["label"],
    "type": ["label", "anomaly_type"],
    "iou": ["box"],
    "rules": ["rule_kinds"],
}


def get_rewards(names: list[str], columns: list[str] | None = None) -> list[Callable]:
    """The reward functions by name, checked before training: unknown names and missing columns are errors."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise RewardError(f"unknown reward(s) {', '.join(unknown)}; known: {', '.join(REWARDS)}")
    if columns is not None:
        for name in names:
            missing = [c for c in REQUIRED_COLUMNS.get(name, []) if c not in columns]
            if missing:
                raise RewardError(
                    f"reward {name!r} needs dataset column(s) {', '.join(missing)}; "
                    f"the dataset has {', '.join(columns)}"
                )
    return [REWARDS[n] for n in names]
