"""The one-method backend protocol, chat-message helpers, and the parse-then-repair loop all backends share.

A request is a list of chat messages; a message's content is a string or a list of blocks
`{"type": "text", "text": ...}` / `{"type": "image", "image": PIL.Image}`. Backends translate these to
their engine's format in a pure function, so the translation is tested without the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from pydantic import BaseModel

from axr.reasoning.parsing import parse, repair_messages
from axr.reasoning.schema import Cost

Message = dict[str, Any]
Request = list[Message]
Arrived = Callable[[int, "Completion"], None]  # (request index, its completion) as each one comes back


class BackendError(RuntimeError):
    """The backend cannot serve at all (model not found, server refused, bad settings): stop the run."""


class RequestFailed(RuntimeError):
    """One streamed request failed (timeout, connection, HTTP error); the backend may still serve others."""


@dataclass
class Sampling:
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    stop: list[str] | None = None
    repetition_penalty: float = 1.0  # >1 discourages loops in small models; not an OpenAI field, vLLM's
    # the first answer token's N most likely tokens and their log-probabilities, in Completion.top_logprobs
    # (one-token scoring reads a yes/no answer from them instead of generated text)
    top_logprobs: int | None = None


@dataclass
class Completion:
    """One answer. `error` is set, and `text` may be empty, when this request failed (timeout, 400...)."""

    text: str = ""
    parsed: BaseModel | None = None
    parse_error: str | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    finish_reason: str | None = None
    repaired: bool = False
    tries: int = 1  # HTTP tries this answer took (retries after dropped connections, timeouts, 429/5xx)
    think: str | None = None
    top_logprobs: dict[str, float] | None = None  # first answer token: text -> log-probability (Sampling.top_logprobs)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        """Model calls this answer cost: the repair turn, when there was one, is a second call."""
        return 1 + int(self.repaired)

    def cost(self) -> Cost:
        return Cost(model_calls=self.calls, tokens_in=self.tokens_in, tokens_out=self.tokens_out)

    def absorb_repair(self, repair: Completion) -> Completion:
        """The repair turn's answer, with cost summed over both calls."""
        repair.tokens_in += self.tokens_in
        repair.tokens_out += self.tokens_out
        repair.latency_s += self.latency_s
        repair.repaired = True
        return repair


def first_seen(pairs) -> dict[str, float]:
    """`{token: logprob}` from (token, logprob) pairs, most likely first: two token ids that decode to the same
    text keep the likelier one's log-probability."""
    out: dict[str, float] = {}
    for token, logprob in pairs:
        out.setdefault(token, logprob)
    return out


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def image_block(image: Image.Image) -> dict:
    return {"type": "image", "image": image}


def system(text: str) -> Message:
    return {"role": "system", "content": [text_block(text)]}


def user(text: str, images: Sequence[Image.Image] = ()) -> Message:
    """A user turn; images come first, as Qwen-VL's own examples put them."""
    return {"role": "user", "content": [*(image_block(i) for i in images), text_block(text)]}


def images_of(request: Request) -> list[Image.Image]:
    return [
        b["image"] for m in request if isinstance(m["content"], list) for b in m["content"] if b["type"] == "image"
    ]


def flatten_text(request: Request) -> list[dict]:
    """Messages with string contents, for text-only chat templates; refuses images instead of dropping them."""
    out = []
    for message in request:
        content = message["content"]
        if isinstance(content, list):
            if any(b["type"] == "image" for b in content):
                raise BackendError("this model takes text only, but the request has images (use a VLM)")
            content = "\n".join(b["text"] for b in content)
        out.append({"role": message["role"], "content": content})
    return out


def convert_images(request: Request, supports_images: bool, to_part) -> list[dict]:
    """Messages with each image block replaced by `to_part(image)`, the engine's own image format.

    A text-only model gets string contents instead (and refuses images).
    """
    if not supports_images:
        return flatten_text(request)
    out = []
    for message in request:
        content = message["content"]
        if isinstance(content, list):
            content = [to_part(b["image"]) if b["type"] == "image" else b for b in content]
        out.append({"role": message["role"], "content": content})
    return out


class Backend:
    """Subclasses implement `_complete`; `generate` adds validation and one repair turn."""

    name = "base"
    model: str = ""
    supports_images: bool = False
    usage: Cost = Cost()  # running cost of this backend: model calls (repair turns included) and tokens

    def generate(
        self,
        requests: Sequence[Request],
        sampling: Sampling | None = None,
        schema: type[BaseModel] | None = None,
        on_answer: Arrived | None = None,
    ) -> list[Completion]:
        """Completions in request order. `on_answer(i, completion)` is called once per request as soon as its
        final completion is known (validated, repaired when needed), so a caller can journal or count each
        answer as it arrives rather than when the whole batch is done."""
        sampling = sampling or Sampling()
        requests = list(requests)
        if not requests:
            return []
        reported: set[int] = set()
        to_repair: list[int] = []

        def arrived(i: int, completion: Completion) -> None:
            reported.add(i)
            if schema is not None and _apply_parse(completion, schema).parse_error and not completion.error:
                to_repair.append(i)  # one repair turn, below, before it is final
                return
            self._finished(i, completion, on_answer)

        completions = self._complete(requests, sampling, schema, arrived)
        for i, completion in enumerate(completions):
            if i not in reported:  # a backend that cannot tell them apart reports the batch when it returns
                arrived(i, completion)
        if to_repair:
            to_repair.sort()
            repair_requests = [
                repair_messages(requests[i], completions[i].text, completions[i].parse_error, schema)
                for i in to_repair
            ]
            for i, repaired in zip(to_repair, self._complete(repair_requests, sampling, schema), strict=True):
                completions[i] = _apply_parse(completions[i].absorb_repair(repaired), schema)
                self._finished(i, completions[i], on_answer)
        return completions

    def _finished(self, i: int, completion: Completion, on_answer: Arrived | None) -> None:
        self._tally([completion])
        if on_answer:
            on_answer(i, completion)

    def _tally(self, completions: list[Completion]) -> None:
        self.usage = sum((c.cost() for c in completions), self.usage)

    def _complete(
        self,
        requests: list[Request],
        sampling: Sampling,
        schema: type[BaseModel] | None,
        arrived: Arrived | None = None,
    ) -> list[Completion]:
        """Raw completions in request order; a backend that finishes requests at different times calls
        `arrived(i, completion)` for each as it comes back (at most once each)."""
        raise NotImplementedError

    def stream(self, request: Request, sampling: Sampling) -> Iterator[str]:
        """Pieces of one free-text answer as they are written. A backend that cannot stream yields the whole
        answer at once; a failed request raises RequestFailed."""
        (completion,) = self.generate([request], sampling)
        if completion.error:
            raise RequestFailed(completion.error)
        if completion.text:
            yield completion.text

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model}

    def close(self) -> None:
        """Release the model or connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _apply_parse(completion: Completion, schema: type[BaseModel]) -> Completion:
    if completion.error:
        completion.parsed, completion.parse_error = None, completion.error
        return completion
    result = parse(completion.text, schema)
    completion.parsed, completion.parse_error, completion.think = result.value, result.error, result.think
    return completion
