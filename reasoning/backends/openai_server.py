"""Any OpenAI-compatible chat server, first of all `vllm serve`.

Async with bounded concurrency, per-request timeouts, retries with exponential backoff on connection errors,
429 and 5xx, `response_format` json_schema for structured output, images as base64 data URLs, and several
base URLs taken round-robin for scale-out. The API key comes from an environment variable and is never
logged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel

from axr.reasoning.backends.base import (
    Backend,
    BackendError,
    Completion,
    Request,
    RequestFailed,
    Sampling,
    convert_images,
    first_seen,
)
from axr.reasoning.media import data_url
from axr.reasoning.schema import json_schema

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}


def public_url(url: str | None) -> str | None:
    """The URL without credentials written into it (`http://user:secret@host/v1` -> `http://***@host/v1`), for
    anything a run writes or prints; the backend itself keeps the URL it was given."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def to_openai_messages(request: Request, supports_images: bool) -> list[dict]:
    """Chat messages with images as data URLs (pure)."""
    return convert_images(request, supports_images, lambda i: {"type": "image_url", "image_url": {"url": data_url(i)}})


def build_payload(
    model: str, request: Request, sampling: Sampling, schema: type[BaseModel] | None, supports_images: bool
) -> dict[str, Any]:
    """The JSON body of one chat-completions call (pure)."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request, supports_images),
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
    }
    if sampling.seed is not None:
        payload["seed"] = sampling.seed
    if sampling.stop:
        payload["stop"] = sampling.stop
    if sampling.repetition_penalty != 1.0:
        payload["repetition_penalty"] = sampling.repetition_penalty
    if sampling.top_logprobs:
        payload["logprobs"], payload["top_logprobs"] = True, sampling.top_logprobs
    if schema is not None:
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": json_schema(schema), "strict": True},
        }
    return payload


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | list[str] = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        supports_images: bool = True,
        deadline_s: float | None = None,
    ):
        self.model = model
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        urls = [u.strip() for part in urls for u in part.split(",") if u.strip()]
        if not urls:
            raise BackendError("openai: no base URL given")
        self.base_urls = [u.rstrip("/") for u in urls]
        self._api_key = os.environ.get(api_key_env, "")
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.deadline_s = deadline_s or timeout_s * (max_retries + 1) + 60  # all tries of one request
        self.supports_images = supports_images

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "base_urls": [public_url(u) for u in self.base_urls]}

    def _complete(self, requests: list[Request], sampling: Sampling, schema: type[BaseModel] | None, arrived=None):
        payloads = [build_payload(self.model, r, sampling, schema, self.supports_images) for r in requests]
        return asyncio.run(self._run_all(payloads, arrived))

    def stream(self, request: Request, sampling: Sampling) -> Iterator[str]:
        """Pieces of the answer as the server sends them (`stream: true`); one try, no retries mid-answer."""
        payload = {**build_payload(self.model, request, sampling, None, self.supports_images), "stream": True}
        url = f"{self.base_urls[0]}/chat/completions"
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            with httpx.Client(headers=headers, timeout=self.timeout_s) as client:
                with client.stream("POST", url, json=payload) as response:
                    if response.status_code != 200:
                        response.read()
                        raise RequestFailed(f"{public_url(url)}: HTTP {response.status_code}: {_error_text(response)}")
                    yield from _stream_pieces(response)
        except httpx.TimeoutException:
            raise RequestFailed(f"{public_url(url)}: timed out after {self.timeout_s:g} s") from None
        except httpx.TransportError as err:
            raise RequestFailed(f"{public_url(url)}: cannot connect ({type(err).__name__})") from None

    async def _run_all(self, payloads: list[dict], arrived=None) -> list[Completion]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        limit = asyncio.Semaphore(self.concurrency)
        urls = itertools.cycle(self.base_urls)
        limits = httpx.Limits(max_connections=self.concurrency * len(self.base_urls))
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits) as client:

            async def one(i: int, payload: dict, url: str) -> Completion:
                async with limit:
                    completion = await self._post(client, url, payload)
                if arrived:
                    arrived(i, completion)
                return completion

            return await asyncio.gather(*(one(i, p, next(urls)) for i, p in enumerate(payloads)))

    async def _post(self, client: httpx.AsyncClient, base_url: str, payload: dict) -> Completion:
        """One request under the retry policy: a dropped connection, a timeout (`timeout_s` per try), 408, 429
        and 5xx are tried again, up to `max_retries` more times and never past the overall deadline
        (`deadline_s`), after exponential backoff with jitter or the server's Retry-After; the tries are
        kept on the Completion. What still fails is an error, never an answer."""
        url = f"{base_url}/chat/completions"
        shown = public_url(url)  # what errors say: never the credentials in the URL
        problem, wait, tries = "", 0.0, 0
        started = time.perf_counter()
        deadline = started + self.deadline_s
        for attempt in range(self.max_retries + 1):
            if attempt:
                wait = max(wait, self.backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
                if time.perf_counter() + wait >= deadline:
                    break
                await asyncio.sleep(wait)
            tries, wait = attempt + 1, 0.0
            try:
                response = await client.post(url, json=payload)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout_s:g} s"
                continue
            except httpx.TransportError as err:  # httpx drops the broken connection: the next try opens a new one
                problem = f"cannot connect ({type(err).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                wait = retry_after(response)
                continue
            if response.status_code in FATAL_STATUS:
                raise BackendError(f"openai: {shown}: HTTP {response.status_code}: {_error_text(response)}")
            if response.status_code != 200:
                return Completion(error=f"{shown}: HTTP {response.status_code}: {_error_text(response)}", tries=tries)
            completion = _completion(response.json(), time.perf_counter() - started)
            completion.tries = tries
            return completion
        return Completion(error=f"{shown}: {problem} ({tries} tr{'y' if tries == 1 else 'ies'})", tries=tries)


def retry_after(response: httpx.Response, cap_s: float = 60.0) -> float:
    """The seconds a 429/503 asks to wait (Retry-After as seconds), capped; 0 when it does not say."""
    try:
        return min(max(float(response.headers.get("retry-after", 0)), 0.0), cap_s)
    except ValueError:
        return 0.0  # an HTTP date: backoff decides


def _stream_pieces(response: httpx.Response) -> Iterator[str]:
    """The content deltas of an OpenAI-style server-sent event stream."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        choices = json.loads(data).get("choices") or [{}]
        piece = (choices[0].get("delta") or {}).get("content")
        if piece:
            yield piece


def _completion(body: dict, latency: float) -> Completion:
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return Completion(
        text=choice["message"].get("content") or "",
        tokens_in=usage.get("prompt_tokens", 0),
        tokens_out=usage.get("completion_tokens", 0),
        latency_s=latency,
        finish_reason=choice.get("finish_reason"),
        top_logprobs=_first_token_logprobs(choice),
    )


def _first_token_logprobs(choice: dict) -> dict[str, float] | None:
    """The first answer token's alternatives, `{token: logprob}`, from an OpenAI-style `logprobs` field."""
    content = (choice.get("logprobs") or {}).get("content") or []
    if not content:
        return None
    first = content[0]
    alternatives = first.get("top_logprobs") or [first]
    ranked = sorted(alternatives, key=lambda a: -float(a["logprob"]))
    return first_seen((a["token"], float(a["logprob"])) for a in ranked)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    except ValueError:
        return response.text[:300]
