"""Backends by name. The dict is the registry: an import path per backend, imported only when used, so
`axr caption --backend openai` never imports torch and `--backend hf` never imports vLLM."""

from __future__ import annotations

import importlib
from typing import Any

from axr.reasoning.backends.base import Backend, BackendError, Completion, Request, Sampling, system, user

BACKENDS = {
    "hf": ("axr.reasoning.backends.hf", "HFBackend", "transformers, local or GPU; needs axr[hf]"),
    "vllm": ("axr.reasoning.backends.vllm_engine", "VLLMBackend", "in-process vLLM engine; needs axr[vllm]"),
    "openai": ("axr.reasoning.backends.openai_server", "OpenAIBackend", "any OpenAI-compatible server (vllm serve)"),
    "probe": ("axr.reasoning.backends.probe", "ProbeBackend", "a linear probe on MiniLM (one-token scoring only)"),
}


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """Build a backend; options are that backend's keyword arguments (None values are dropped)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls, _ = BACKENDS[name]
    options = {k: v for k, v in options.items() if v is not None}
    return getattr(importlib.import_module(module), cls)(model, **options)


def open_backend(
    backend: str,
    model: str,
    base_url: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    timeout_s: float | None = None,
    text_only: bool = False,
    trust_remote_code: bool = False,
) -> Backend:
    """The backend named by command-line options or a task's settings, with only the options it takes
    (offline aliases such as `smollm2` resolved); BackendError or FileNotFoundError when it cannot be made."""
    from axr.reasoning.local_models import resolve_model

    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; one of: {', '.join(BACKENDS)}")
    if backend == "openai":
        options = dict(base_url=base_url, concurrency=concurrency, timeout_s=timeout_s, supports_images=not text_only)
    elif backend == "probe":
        options = {}
    else:
        options = dict(adapter=adapter, trust_remote_code=trust_remote_code or None)
        if backend == "hf":
            options["batch_size"] = batch_size
        model = resolve_model(model)
    return load_backend(backend, model, **options)


def parse_model_spec(text: str, flag: str) -> tuple[str, str, str | None]:
    """'BACKEND:MODEL[@BASE_URL]' (as --judge and --choice take it) -> (backend, model, base_url)."""
    head, _, base_url = text.partition("@")
    backend, _, model = head.partition(":")
    if not backend or not model:
        raise ValueError(f"{flag} {text!r}: expected BACKEND:MODEL[@BASE_URL], e.g. hf:smollm2")
    return backend, model, base_url or None


def settings_backend(settings, text_only: bool = False) -> Backend:
    """The backend a task's settings (a pydantic model) name: a sample pipeline, a re-check or a judge, with
    backend, model, base_url, and batch, concurrency or a per-try timeout where the section has them."""
    fields = settings.model_dump()
    return open_backend(
        fields["backend"],
        fields["model"],
        fields.get("base_url"),
        batch_size=fields.get("batch"),
        concurrency=fields.get("concurrency"),
        timeout_s=fields.get("timeout_s"),
        text_only=text_only,
    )


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "Request",
    "Sampling",
    "load_backend",
    "open_backend",
    "parse_model_spec",
    "settings_backend",
    "system",
    "user",
]
