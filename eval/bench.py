"""Throughput benchmarks that compare settings side by side in one run.

`backends`: the `hf` backend batched vs one request at a time, and the `openai` backend with 1 vs N
requests in flight against one server. Same prompts, same greedy sampling, same token budget in each
pair, so the ratio is the effect of batching or concurrency alone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from axr.reasoning.backends.base import Backend, Sampling, user


@dataclass
class BenchRow:
    backend: str
    model: str
    setting: str
    requests: int
    seconds: float
    tokens_out: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "requests_per_s": self.requests_per_s, "tokens_per_s": self.tokens_per_s}


QUESTIONS = [
    "Describe a scratched metal surface in one sentence.",
    "What makes a woven fabric look defective?",
    "Name two signs of a cracked bottle.",
    "Is a bicycle on a pedestrian walkway unusual? Answer briefly.",
    "What does a normal printed circuit board look like?",
    "Describe a stain on a carpet in one sentence.",
    "What is an anomaly in a video of a street?",
    "Give one cause of a dented can.",
]


def bench_requests(n: int, with_images: bool, seed: int = 0) -> list[list[dict]]:
    """n distinct prompts (with a small random image each when the model sees images)."""
    rng = np.random.default_rng(seed)
    requests = []
    for i in range(n):
        images = [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))] if with_images else []
        requests.append([user(QUESTIONS[i % len(QUESTIONS)], images)])
    return requests


def timed(backend: Backend, setting: str, chunks: list[list], sampling: Sampling) -> BenchRow:
    """Run the chunks one after another (each chunk is one generate() call) and time the whole."""
    started = time.perf_counter()
    tokens = 0
    for chunk in chunks:
        tokens += sum(c.tokens_out for c in backend.generate(chunk, sampling))
    seconds = time.perf_counter() - started
    return BenchRow(backend.name, backend.model, setting, sum(len(c) for c in chunks), seconds, tokens)


def bench_hf(backend: Backend, n: int, batch: int, sampling: Sampling) -> list[BenchRow]:
    requests = bench_requests(n, backend.supports_images)
    backend.generate(requests[:1], sampling)  # warm-up: first call pays for lazy initialisation
    backend.batch_size = 1
    one = timed(backend, "one by one", [[r] for r in requests], sampling)
    backend.batch_size = batch
    batched = timed(backend, f"batch {batch}", [requests], sampling)
    return [one, batched]


def bench_openai(backend: Backend, n: int, concurrency: int, sampling: Sampling) -> list[BenchRow]:
    requests = bench_requests(n, False)
    backend.generate(requests[:1], sampling)
    backend.concurrency = 1
    one = timed(backend, "concurrency 1", [requests], sampling)
    backend.concurrency = concurrency
    many = timed(backend, f"concurrency {concurrency}", [requests], sampling)
    return [one, many]


def parse_setting(text: str) -> dict:
    """'batch=8,backend=hf' -> {'batch': 8, 'backend': 'hf'} (values read as YAML scalars)."""
    import yaml

    setting = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--setting {text!r}: expected key=value[,key=value]")
        setting[key.strip()] = yaml.safe_load(value)
    return setting


def bench_task(task: dict, settings: list[dict], limit: int, workdir, make_engine) -> list[dict]:
    """Run the same `limit` samples of a task under each pipeline setting (fresh run folders, model loading
    not timed) and return one row per setting: throughput, cost and the headline metrics."""
    from pathlib import Path

    from axr.eval.runner import RunOptions, run_task
    from axr.eval.tasks import deep_merge

    rows = []
    for number, setting in enumerate(settings):
        config = deep_merge(task, {"pipeline": setting})
        with make_engine(config["pipeline"]) as engine:
            started = time.perf_counter()
            metrics = run_task(config, Path(workdir) / f"setting-{number}", engine, RunOptions(limit=limit))
            seconds = time.perf_counter() - started
        cost = metrics["cost"]
        rows.append(
            {
                "setting": ",".join(f"{k}={v}" for k, v in setting.items()) or "task defaults",
                "samples": metrics["samples"],
                "seconds": round(seconds, 2),
                "samples_per_s": metrics["samples"] / seconds,
                "model_calls": cost["model_calls"],
                "tokens_in": cost["tokens_in"],
                "tokens_out": cost["tokens_out"],
                "tokens_out_per_s": cost["tokens_out"] / seconds,
                "auroc": metrics.get("auroc"),
                "unparsed_rate": metrics.get("unparsed_rate"),
                "errors": metrics["errors"],
            }
        )
    return rows
