"""Chatting with images about defects: a session holds the query images, the normal references, the rule
book, the conversation and the last verdict; it is saved and loaded as JSON.

The first user turn carries the images (references first, then the queries, as direct mode sends them),
so every later turn of the conversation shares that prefix. A verdict is asked for with direct mode's own
prompt and structured output, and then shapes the system prompt of the following turns. Every bad input
(a missing or corrupt image, a decompression bomb, an empty message, a model that answers nothing) raises
ChatError with one clear line and leaves the session as it was.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from axr.reasoning.backends.base import Backend, RequestFailed, Sampling, system, user
from axr.reasoning.deduction import DirectItem, direct_verdicts
from axr.reasoning.media import MediaError, boxed_image, load_image
from axr.reasoning.prompting import render
from axr.reasoning.rulebook_import import load_rules
from axr.reasoning.schema import RuleBook, SchemaError, Verdict

MAX_MESSAGE_CHARS = 4000


class ChatError(ValueError):
    """Something the user gave or the model returned cannot be used; the session is unchanged."""


@dataclass
class Session:
    images: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    rules: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)  # {"role": "user"|"assistant", "content": text}
    verdict: dict | None = None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Session:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ChatError(f"{path}: no such session file") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise ChatError(f"{path}: not a saved AXR chat session ({error})") from None


class Chat:
    def __init__(
        self, backend: Backend, session: Session | None = None, domain: str = "object", max_tokens: int = 400
    ):
        self.backend, self.domain, self.max_tokens = backend, domain, max_tokens
        self.session = session or Session()
        self._book: RuleBook | None = None
        for path in self.session.images + self.session.references:
            check_image(path)
        if self.session.rules:
            self._book = read_rules(self.session.rules)

    # -- what the user adds -------------------------------------------------------------------------------
    def add_image(self, path: str) -> None:
        check_image(path)
        self.session.images.append(str(path))

    def add_reference(self, path: str) -> str | None:
        """Add a normal reference; returns a warning when its size differs from the query's."""
        check_image(path)
        self.session.references.append(str(path))
        return size_warning(path, self.session.images[-1]) if self.session.images else None

    def set_rules(self, path: str) -> None:
        self._book = read_rules(path)
        self.session.rules = str(path)

    # -- asking ---------------------------------------------------------------------------------------------
    def ask(self, text: str, on_piece=None) -> str:
        """The model's answer to one more user message (the history is kept for the next turns). With
        `on_piece`, the answer is streamed: each piece goes to on_piece as the model writes it."""
        text = (text or "").strip()
        if not text:
            raise ChatError("empty message: type a question about the image")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ChatError(f"message too long ({len(text)} characters; at most {MAX_MESSAGE_CHARS})")
        if self.backend.supports_images is False and (self.session.images or self.session.references):
            images = []  # a text-only model still answers about the conversation and the verdict
        else:
            images = [load_image(p) for p in self.session.references + self.session.images]
        turns = [*self.session.history, {"role": "user", "content": text}]
        verdict = Verdict(**self.session.verdict) if self.session.verdict else None
        prompt = render("chat_system", n_references=len(self.session.references), rulebook=self._book, verdict=verdict)
        messages = [system(prompt)]
        for index, turn in enumerate(turns):
            if turn["role"] == "user":
                messages.append(user(turn["content"], images if index == 0 else []))
            else:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": turn["content"]}]})
        pieces = []
        try:
            for piece in self.backend.stream(messages, Sampling(max_tokens=self.max_tokens)):
                pieces.append(piece)
                if on_piece:
                    on_piece(piece)
        except RequestFailed as error:
            raise ChatError(f"the model could not answer: {error}") from None
        answer = "".join(pieces).strip()
        if not answer:
            raise ChatError("the model returned nothing; ask again or rephrase")
        self.session.history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
        return answer

    def verdict(self) -> Verdict:
        """A structured verdict on the last query image, with the references and the rule book."""
        if not self.session.images:
            raise ChatError("no query image yet: add one first")
        if self.backend.supports_images is False:
            raise ChatError("this model reads text only: a verdict needs a vision-language model")
        references = [load_image(p) for p in self.session.references]
        item = DirectItem(Path(self.session.images[-1]).name, [load_image(self.session.images[-1])], references)
        (verdict,) = direct_verdicts(self.backend, [item], self._book, domain=self.domain)
        if verdict.verdict == "unparsed":
            raise ChatError(f"the model's verdict could not be read: {verdict.meta.get('parse_error', 'no answer')}")
        self.session.verdict = verdict.model_dump(mode="json", exclude={"raw"})
        return verdict


def check_image(path: str) -> None:
    """Read the image as any AXR input is read (format, size, decompression bombs); ChatError if it fails."""
    try:
        load_image(path)
    except MediaError as error:
        raise ChatError(str(error)) from None


def read_rules(path: str) -> RuleBook:
    try:
        return load_rules(Path(path))
    except (SchemaError, OSError) as error:
        raise ChatError(f"rules: {error}") from None


def size_warning(reference: str, query: str) -> str | None:
    """Allowed (a VLM compares content, not pixels), but the user should know."""
    size, query_size = load_image(reference).size, load_image(query).size
    if size == query_size:
        return None
    name = Path(reference).name
    return f"{name}: its size {size} differs from the query's {query_size}; comparisons may be less reliable"


def boxed_query(image_path: str, verdict: Verdict | dict, color: str = "#ff2020"):
    """The query image with the verdict's box drawn on it (or the image as it is when there is no box)."""
    return boxed_image(load_image(image_path), verdict, color)
