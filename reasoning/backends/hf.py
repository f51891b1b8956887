"""transformers backend: batched, left-padded generation on CPU or GPU, with an optional peft adapter.

Structured output: the schema is always in the prompt and `Backend.generate` validates and repairs; when
xgrammar is installed (it comes with vLLM, or `pip install xgrammar`), decoding is also constrained to the
JSON schema, as vLLM does it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from axr.reasoning.backends.base import (
    Backend,
    BackendError,
    Completion,
    Request,
    Sampling,
    first_seen,
    flatten_text,
    images_of,
)
from axr.reasoning.media import MAX_PIXELS, MIN_PIXELS
from axr.reasoning.schema import json_schema


def build_prompts(processor, requests: list[Request], vision: bool) -> tuple[list[str], list]:
    """Chat-templated prompt strings and the images in prompt order (pure, given a processor)."""
    prompts, images = [], []
    for request in requests:
        messages = request if vision else flatten_text(request)
        prompts.append(processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        images.extend(images_of(request))
    return prompts, images


class HFBackend(Backend):
    name = "hf"

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        trust_remote_code: bool = False,
        constrained: bool = True,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ):
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        self.model, self.batch_size, self.adapter = model, batch_size, adapter
        kwargs = {"trust_remote_code": trust_remote_code}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            config = AutoConfig.from_pretrained(model, **kwargs)
        except (OSError, ValueError) as err:
            raise BackendError(f"hf: cannot load model {model!r}: {str(err).splitlines()[0]}") from None
        self.supports_images = hasattr(config, "vision_config")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = (
            (torch.bfloat16 if device != "cpu" else torch.float32) if dtype == "auto" else getattr(torch, dtype)
        )
        if self.supports_images:
            # pixel budget: the processor's own unless asked; vLLM must be given the same, or image tokens differ
            size = {"shortest_edge": min_pixels or MIN_PIXELS, "longest_edge": max_pixels or MAX_PIXELS}
            extra = {"size": size} if (min_pixels or max_pixels) else {}
            self.processor = AutoProcessor.from_pretrained(model, **extra, **kwargs)
            self.tokenizer = self.processor.tokenizer
            model_cls = AutoModelForImageTextToText
        else:
            self.processor = self.tokenizer = AutoTokenizer.from_pretrained(model, **kwargs)
            model_cls = AutoModelForCausalLM
        self.tokenizer.padding_side = "left"  # generation appends on the right; pads must not sit between
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.net = model_cls.from_pretrained(model, dtype=torch_dtype, **kwargs).to(device).eval()
        if adapter:
            from peft import PeftModel

            if not Path(adapter, "adapter_config.json").is_file():
                raise BackendError(f"hf: {adapter}: not a peft adapter folder (no adapter_config.json)")
            self.net = PeftModel.from_pretrained(self.net, adapter).eval()
        self.device = device
        self._stop_ids = self._eos_ids()
        self._grammars = _GrammarCache(self.tokenizer, self.net) if constrained else None

    def _eos_ids(self) -> set[int]:
        ids = self.net.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id:
            ids.add(im_end)
        return ids

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model, "adapter": self.adapter, "device": self.device}

    def _complete(self, requests: list[Request], sampling: Sampling, schema: type[BaseModel] | None, arrived=None):
        out: list[Completion] = []
        for start in range(0, len(requests), self.batch_size):
            out.extend(self._complete_batch(requests[start : start + self.batch_size], sampling, schema))
            for i in range(start, len(out)) if arrived else ():
                arrived(i, out[i])
        return out

    def _complete_batch(
        self, requests: list[Request], sampling: Sampling, schema: type[BaseModel] | None
    ) -> list[Completion]:
        import torch

        inputs = self._inputs(requests)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        processors = self._grammars.processors(schema) if (schema and self._grammars) else None
        started = time.perf_counter()
        scored = bool(sampling.top_logprobs)
        with torch.inference_mode():
            generated = self.net.generate(
                **inputs,
                **self._generation_args(sampling),
                logits_processor=processors,
                output_scores=scored,
                return_dict_in_generate=True,
            )
        per_request = (time.perf_counter() - started) / len(requests)  # a batch shares one clock
        new_tokens = generated.sequences[:, inputs["input_ids"].shape[1] :]
        attention = inputs["attention_mask"]
        completions = [
            self._completion(new_tokens[i].tolist(), int(attention[i].sum()), per_request)
            for i in range(len(requests))
        ]
        if scored:  # the first step's distribution, before sampling: what the answer's first token could be
            first = torch.log_softmax(generated.scores[0].float(), dim=-1).topk(sampling.top_logprobs, dim=-1)
            for completion, values, ids in zip(completions, first.values, first.indices, strict=True):
                tokens = [self.tokenizer.decode([i]) for i in ids.tolist()]
                completion.top_logprobs = first_seen(zip(tokens, values.tolist(), strict=True))
        return completions

    def _inputs(self, requests: list[Request]):
        if not self.supports_images and any(images_of(r) for r in requests):
            raise BackendError(f"hf: {self.model} takes text only, but a request has images (use a VLM)")
        prompts, images = build_prompts(self.processor, requests, self.supports_images)
        if self.supports_images:
            inputs = self.processor(text=prompts, images=images or None, return_tensors="pt", padding=True)
        else:
            inputs = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return inputs.to(self.device)

    def _generation_args(self, sampling: Sampling) -> dict:
        sample = sampling.temperature > 0
        return {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": sample,
            "temperature": sampling.temperature if sample else None,
            "top_p": sampling.top_p if sample else None,
            "top_k": None,
            "repetition_penalty": sampling.repetition_penalty,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self._stop_ids),
        }

    def stream(self, request: Request, sampling: Sampling) -> Iterator[str]:
        """Text pieces as the model writes them (transformers' TextIteratorStreamer, generation in a thread)."""
        from threading import Thread

        import torch
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self._inputs([request])

        def run() -> None:
            with torch.inference_mode():
                self.net.generate(**inputs, **self._generation_args(sampling), streamer=streamer)

        worker = Thread(target=run, daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()

    def _completion(self, token_ids: list[int], tokens_in: int, latency: float) -> Completion:
        length, finish = len(token_ids), "length"
        for i, tok in enumerate(token_ids):
            if tok in self._stop_ids:
                length, finish = i + 1, "stop"
                break
        text = self.tokenizer.decode(token_ids[:length], skip_special_tokens=True)
        return Completion(text=text, tokens_in=tokens_in, tokens_out=length, latency_s=latency, finish_reason=finish)

    def close(self) -> None:
        del self.net


class _GrammarCache:
    """xgrammar's JSON-schema grammars for this tokenizer, compiled once per schema; absent without xgrammar."""

    def __init__(self, tokenizer, net):
        try:
            import xgrammar
        except ImportError:
            self._compiler = None
            return
        vocab_size = net.get_output_embeddings().weight.shape[0]
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self._compiler = xgrammar.GrammarCompiler(info)
        self._compiled: dict[str, object] = {}

    def processors(self, schema: type[BaseModel]) -> list | None:
        if self._compiler is None:
            return None
        from xgrammar.contrib.hf import LogitsProcessor

        key = json.dumps(json_schema(schema), sort_keys=True)
        if key not in self._compiled:
            # no free whitespace: a weak model would otherwise fill its whole budget with it
            self._compiled[key] = self._compiler.compile_json_schema(key, any_whitespace=False)
        return [LogitsProcessor(self._compiled[key])]  # one per generate() call: it holds matcher state
