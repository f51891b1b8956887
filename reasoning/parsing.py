"""Pure functions: a raw completion -> a validated pydantic object, or the reason it is not one.

Shapes handled: bare JSON, JSON in a code fence, JSON with prose around it, and reasoning models'
`<think>...</think><answer>...</answer>`. Nothing is guessed: a wrong enum, a truncated object or an empty
answer is an error with a message the repair turn can show the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from axr.reasoning.prompting import render
from axr.reasoning.schema import describe_validation_error

T = TypeVar("T", bound=BaseModel)

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


@dataclass
class Parsed(Generic[T]):
    value: T | None
    error: str | None = None
    think: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def split_think_answer(text: str) -> tuple[str | None, str]:
    """Return (think, answer). Without tags the whole text is the answer.

    >>> split_think_answer("<think>cracked edge</think><answer>{}</answer>")
    ('cracked edge', '{}')
    """
    think_blocks = _THINK.findall(text)
    answers = _ANSWER.findall(text)
    think = think_blocks[0].strip() if think_blocks else None
    if "<answer>" in text or answers:
        if len(answers) != 1:
            raise ValueError(f"expected exactly one <answer>...</answer> block, found {len(answers)}")
        return think, answers[0].strip()
    if think_blocks:
        return think, _THINK.sub("", text).strip()
    return None, text.strip()


def extract_json(text: str) -> Any:
    """The first JSON object in `text` (fenced or surrounded by prose)."""
    text = text.strip()
    if not text:
        raise ValueError("empty answer")
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except json.JSONDecodeError:
            continue
    if "{" in text:
        raise ValueError("JSON object is incomplete or malformed (truncated output?)")
    raise ValueError("no JSON object found in the answer")


def parse(text: str | None, model: type[T]) -> Parsed[T]:
    """Validate a completion against `model`; never raises on model output."""
    if text is None:
        return Parsed(None, "the model returned nothing")
    try:
        think, answer = split_think_answer(text)
        data = extract_json(answer)
    except ValueError as err:
        return Parsed(None, str(err))
    if not isinstance(data, dict):
        return Parsed(None, f"expected a JSON object, got {type(data).__name__}", think)
    try:
        return Parsed(model.model_validate(data), None, think)
    except ValidationError as err:
        return Parsed(None, describe_validation_error(err), think)


def repair_messages(messages: list[dict], raw: str, error: str, model: type[BaseModel]) -> list[dict]:
    """The conversation for the single repair turn: the bad answer, then what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": [{"type": "text", "text": raw or ""}]},
        {"role": "user", "content": [{"type": "text", "text": render("repair", error=error, schema=model)}]},
    ]
