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
}


def load_backend(name: str, model: str, **options: Any) -> Backend:
    """Build a backend; options are that backend's keyword arguments (None values are dropped)."""
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls, _ = BACKENDS[name]
    options = {k: v for k, v in options.items() if v is not None}
    return getattr(importlib.import_module(module), cls)(model, **options)


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "Completion",
    "Request",
    "Sampling",
    "load_backend",
    "system",
    "user",
]
