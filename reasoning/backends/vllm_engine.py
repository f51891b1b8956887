"""In-process vLLM (`vllm.LLM`): batched `chat`, JSON-schema structured outputs, prefix caching, LoRA.

Every deduction prompt starts with the same rule-book system message, so automatic prefix caching computes
that prefix once per batch instead of once per sample.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from axr.reasoning.backends.base import (
    Backend,
    BackendError,
    Completion,
    Request,
    Sampling,
    convert_images,
    first_seen,
)
from axr.reasoning.schema import json_schema


def to_vllm_messages(request: Request, supports_images: bool) -> list[dict]:
    """Chat messages in vLLM's format: PIL images as `image_pil` parts (pure)."""
    return convert_images(request, supports_images, lambda i: {"type": "image_pil", "image_pil": i})


def sampling_kwargs(sampling: Sampling, schema: type[BaseModel] | None) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams`, structured output as a plain dict (pure)."""
    kwargs: dict[str, Any] = {
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seed": sampling.seed,
        "repetition_penalty": sampling.repetition_penalty,
    }
    if sampling.stop:
        kwargs["stop"] = sampling.stop
    if sampling.top_logprobs:
        kwargs["logprobs"] = sampling.top_logprobs
    if schema is not None:
        kwargs["structured_outputs"] = {"json": json_schema(schema)}
    return kwargs


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        limit_images: int | None = None,
        max_lora_rank: int = 64,
        trust_remote_code: bool = False,
        **engine_kwargs: Any,
    ):
        try:
            from vllm import LLM
        except ImportError:
            raise BackendError("vllm backend: vLLM is not installed (pip install 'axr[vllm]')") from None
        self.model, self.adapter = model, adapter
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": True,
            "trust_remote_code": trust_remote_code,
            # free whitespace between JSON tokens lets a weak model spend its whole budget on newlines
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
            **engine_kwargs,
        }
        if limit_images:  # reference images + query: more than vLLM's default of one per prompt
            kwargs["limit_mm_per_prompt"] = {"image": limit_images}
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if adapter:
            kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank)
        try:
            self.llm = LLM(**kwargs)
            config = self.llm.llm_engine.model_config
            self.supports_images = bool(getattr(config, "is_multimodal_model", False))
        except (OSError, ValueError, RuntimeError) as err:
            raise BackendError(f"vllm: cannot load {model!r}: {str(err).splitlines()[0]}") from None
        self._lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("adapter", 1, adapter)

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "adapter": self.adapter}

    def _complete(self, requests: list[Request], sampling: Sampling, schema: type[BaseModel] | None, arrived=None):
        """One batched call: the whole batch arrives at once (the base class reports it)."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        kwargs = sampling_kwargs(sampling, schema)
        if "structured_outputs" in kwargs:
            kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
        conversations = [to_vllm_messages(r, self.supports_images) for r in requests]
        started = time.perf_counter()
        outputs = self.llm.chat(conversations, SamplingParams(**kwargs), use_tqdm=False, lora_request=self._lora)
        per_request = (time.perf_counter() - started) / len(requests)  # one batched call, shared clock
        return [
            Completion(
                text=o.outputs[0].text,
                tokens_in=len(o.prompt_token_ids or []),
                tokens_out=len(o.outputs[0].token_ids),
                latency_s=per_request,
                finish_reason=o.outputs[0].finish_reason,
                top_logprobs=_first_token_logprobs(o.outputs[0]),
                extra={"cached_tokens": getattr(o, "num_cached_tokens", None)},
            )
            for o in outputs
        ]


def _first_token_logprobs(output) -> dict[str, float] | None:
    """The first generated token's alternatives, `{decoded token: logprob}`, from vLLM's per-step logprobs."""
    steps = getattr(output, "logprobs", None)
    if not steps:
        return None
    ranked = sorted(steps[0].values(), key=lambda entry: -entry.logprob)
    return first_seen((entry.decoded_token or "", float(entry.logprob)) for entry in ranked)
