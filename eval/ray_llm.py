"""The `vllm` backend on a Ray GPU cluster through `ray.data.llm` (`axr eval run TASK --engine ray --backend
vllm`): vLLM engine replicas that Ray schedules, with vLLM's own continuous batching, prefix caching and
image preprocessing, instead of one AXR backend per actor.

Three stages, one stream: `request_row` (a map stage: the sample's media and AXR's direct-mode prompt as an
OpenAI-format chat with images as data URLs, and the structured-output schema), the vLLM engine processor,
and `record_row` (the answer parsed into a Verdict and the sample's PredictionRecord). A sample whose
media cannot be read still flows through, as a one-token placeholder request, so the stream stays one
dataset; `record_row` turns it into the sample's error record. There is no repair turn here: an answer that
fails validation is recorded `unparsed`, as the local runner records one after its repair.
"""

from __future__ import annotations

import json
from typing import Any

from axr.eval.records import PredictionRecord
from axr.eval.samples import MediaLoader, load_rulebook
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Completion, Sampling
from axr.reasoning.backends.openai_server import to_openai_messages
from axr.reasoning.backends.vllm_engine import sampling_kwargs
from axr.reasoning.deduction import DirectItem, direct_request, direct_verdict
from axr.reasoning.media import MediaError
from axr.reasoning.parsing import parse
from axr.reasoning.schema import Sample, VerdictAnswer

PLACEHOLDER = [{"role": "user", "content": [{"type": "text", "text": "-"}]}]


class RequestBuilder:
    """Sample (JSON) -> the processor's input row: `messages`, `sampling_params`, and the sample carried on."""

    def __init__(self, task: TaskConfig):
        self.task, self.loader, self.book = task, MediaLoader(task), load_rulebook(task)
        params = sampling_kwargs(Sampling(max_tokens=task.pipeline.max_tokens), VerdictAnswer)
        # the schema as a string: a JSON schema's mixed-type values do not survive Arrow's columns
        params["structured_outputs"] = {"json": json.dumps(params["structured_outputs"]["json"])}
        self.params = {k: v for k, v in params.items() if v is not None}

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        sample = Sample.model_validate_json(row["sample"])
        try:
            item = DirectItem(sample.sample_id, self.loader.query(sample), self.loader.references(sample))
        except (MediaError, OSError) as error:
            return {
                **row,
                "messages": PLACEHOLDER,
                "sampling_params": {**self.params, "max_tokens": 1},
                "error": str(error),
            }
        messages = to_openai_messages(direct_request(item, self.book, self.task.pipeline.domain), True)
        return {
            **row,
            "messages": messages,
            "sampling_params": self.params,
            "error": "",
            "references": len(item.references),
        }


class RecordBuilder:
    """The processor's output row -> {"record": JSON of the sample's record}."""

    def __init__(self, task: TaskConfig):
        book = load_rulebook(task)
        self.known = book.rule_ids() if book else set()
        self.described = {"backend": "vllm", "model": task.pipeline.model, "engine": "ray.data.llm"}

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        sample = Sample.model_validate_json(row["sample"])
        if row.get("error"):
            return {"record": PredictionRecord.unreadable(sample, row["error"]).model_dump_json()}
        text = row.get("generated_text") or ""
        parsed = parse(text, VerdictAnswer)
        completion = Completion(
            text=text,
            parsed=parsed.value,
            parse_error=parsed.error,
            error=row.get("__inference_error__") or None,
            tokens_in=int(row.get("num_input_tokens") or 0),
            tokens_out=int(row.get("num_generated_tokens") or 0),
        )
        references = int(row.get("references") or 0)
        verdict = direct_verdict(sample.sample_id, references, completion, self.known, self.described)
        return {"record": PredictionRecord.judged(sample, verdict).model_dump_json()}


def processor_config(task: TaskConfig, workers: int, max_model_len: int = 8192):
    """vLLM engine replicas (`workers`, one GPU each) with prefix caching and xgrammar structured output."""
    from ray.data.llm import vLLMEngineProcessorConfig

    from axr.reasoning.local_models import resolve_model

    return vLLMEngineProcessorConfig(
        model_source=resolve_model(task.pipeline.model),
        engine_kwargs={
            "enable_prefix_caching": True,
            "max_model_len": max_model_len,
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        },
        concurrency=workers,
        batch_size=task.pipeline.batch,
        prepare_multimodal_stage=True,
        should_continue_on_error=True,  # a failed request becomes that sample's error record, not a dead run
    )


def llm_records(task: TaskConfig, pending: list[Sample], workers: int):
    """The pending samples through the three stages; yields lists of records as blocks finish."""
    import ray
    from ray.data.llm import build_processor

    if task.mode != "direct":
        raise ValueError(f"task {task.task}: ray.data.llm runs direct mode only; use --backend openai for {task.mode}")
    processor = build_processor(
        processor_config(task, workers),
        preprocess=RequestBuilder(task),
        postprocess=RecordBuilder(task),
    )
    dataset = ray.data.from_items([{"sample": sample.model_dump_json()} for sample in pending])
    for chunk in processor(dataset).iter_batches(batch_size=task.pipeline.batch, batch_format="numpy"):
        yield [PredictionRecord.model_validate_json(text) for text in chunk["record"]]
