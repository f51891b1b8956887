"""Batch evaluation on Ray (`axr eval run TASK --engine ray`): the same tasks, journal and metrics as the
local runner, on a Ray cluster of one machine or many.

Sample tasks: the pending samples become a Ray Dataset; an actor pool (`--workers` actors, each holding one
backend, one GPU each where the cluster has GPUs) loads each chunk's media and predicts it with the task's
pipeline (`RayChunkPredictor`: the mode's own `predict`, as the local runner calls it); records stream back
to the driver, which journals them as they arrive. The runner is the local one (`axr.eval.runner.run`), so
resume, `--limit`, `--shard`, `--retry-errors` and metrics are the same. Ray Data schedules the chunks,
applies backpressure, and restarts an actor that dies (its chunk is retried; the journal keeps one record
per sample whatever is delivered twice). A mode whose samples need no model (a caption task's trigger
stage) predicts them in the driver; its model work (induction, the re-check) is spread over an actor pool
(`PooledBackend`).

Paths in samples must be readable where the actors run (shared storage on a cluster). Environment variables
that tell AXR where its models and data are (AXR_*, HF_*) travel to the workers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from axr.eval.pipelines import pipeline_for
from axr.eval.pipelines.base import Pipeline
from axr.eval.records import PredictionRecord
from axr.eval.runner import LazyBackend, Predictions, RunOptions, local_predictions, run, timed
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends import Backend, BackendError, settings_backend
from axr.reasoning.backends.base import Completion, Sampling
from axr.reasoning.schema import Sample

RESTARTS = 3  # PooledBackend: a dead actor is restarted, and its call retried, this many times


def evaluate_on_ray(task: TaskConfig, output: Path, options: RunOptions, on_progress=None, on_message=print) -> dict:
    pipeline = pipeline_for(task)
    settings = pipeline.endpoint
    described = {**settings.model_dump(include={"backend", "model"}), "engine": "ray", "workers": options.workers}
    predictions = ray_predictions(options.workers) if pipeline.model_per_sample else local_predictions
    text_only = pipeline.text_only and settings.backend == "openai"
    pooled = LazyBackend(lambda: PooledBackend(settings, options.workers, text_only))
    with ray_cluster(options.ray_address, on_message):
        try:
            return run(task, output, pooled, options, predictions, described, on_progress, on_message)
        finally:
            pooled.close()


@contextmanager
def ray_cluster(address: str | None, on_message: Callable[[str], None] = print) -> Iterator[None]:
    """Connected to the cluster at `address`, or to a local one started here (stopped after)."""
    if address and _has_auth_token():  # `ray start` clusters require their token; drivers must opt in (before
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray is imported: it reads the mode then)
    try:
        import ray
    except ImportError:
        raise BackendError("--engine ray needs Ray: pip install 'axr[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith(("AXR_", "HF_"))}
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level="ERROR",
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
        except ConnectionError as error:
            raise BackendError(f"--ray-address {address}: {error}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # AXR's own bar counts the samples
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its execution notices are not the user's business
    resources = ray.cluster_resources()
    on_message(f"ray: {int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs in the cluster")
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _has_auth_token() -> bool:
    """Ray's token for clusters: RAY_AUTH_TOKEN, a file at RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def ray_predictions(workers: int) -> Predictions:
    """The pending samples as a Ray Dataset through an actor pool of `workers` RayChunkPredictors."""

    def predict(pipeline: Pipeline, pending: list[Sample], backend) -> Iterator[list[PredictionRecord]]:
        import ray

        task = pipeline.task
        if pipeline.endpoint.backend == "vllm":  # vLLM replicas scheduled by ray.data.llm (GPU clusters)
            from axr.eval.ray_llm import llm_records

            yield from llm_records(task, pending, workers)
            return
        batch = task.pipeline.batch
        rows = [{"sample": sample.model_dump_json()} for sample in pending]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / batch)))
        results = dataset.map_batches(
            RayChunkPredictor,
            fn_constructor_kwargs={"task_json": task.model_dump_json()},
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(size=workers),
            **worker_resources(pipeline.endpoint.backend),
        )  # Ray Data restarts a dead actor and retries its chunk; an actor that cannot start fails the run
        for chunk in results.iter_batches(batch_size=None, batch_format="numpy"):
            yield [PredictionRecord.model_validate_json(text) for text in chunk["record"]]

    return predict


def worker_resources(backend: str) -> dict[str, float]:
    """One CPU per actor; one GPU too for an in-process model (hf, vllm) where the cluster has GPUs."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    return {"num_cpus": 1, "num_gpus": 1 if gpus and backend in ("hf", "vllm") else 0}


class RayChunkPredictor:
    """One actor of the pool: sets up the task's pipeline and its backend once, then turns batches of samples
    (JSON) into records (JSON, so a record crosses Arrow's columns unchanged)."""

    def __init__(self, task_json: str):
        self.pipeline = pipeline_for(TaskConfig.model_validate_json(task_json))
        self.backend = LazyBackend(lambda: settings_backend(self.pipeline.endpoint))
        self.pipeline.setup(self.backend, lambda message: None, lambda name: None)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        chunk = [Sample.model_validate_json(text) for text in batch["sample"]]
        return {"record": [r.model_dump_json() for r in timed(self.pipeline, chunk, self.backend)]}


class BackendActor:
    """A backend in a Ray actor, for PooledBackend."""

    def __init__(self, settings, text_only: bool):
        self.backend = settings_backend(settings, text_only)

    def generate(self, requests, sampling, schema) -> list[Completion]:
        return self.backend.generate(requests, sampling, schema)


class PooledBackend(Backend):
    """A Backend whose requests are split evenly over `workers` actors, each holding the backend the settings
    name; what each actor answers (parsed, repaired, errors recorded) comes back in request order."""

    def __init__(self, settings, workers: int, text_only: bool = False):
        import ray

        self.name, self.model = f"ray:{settings.backend}", settings.model
        self.supports_images = not text_only and settings.backend != "openai"
        options = {**worker_resources(settings.backend), "max_restarts": RESTARTS, "max_task_retries": RESTARTS}
        actor = ray.remote(**options)(BackendActor)
        self.actors = [actor.remote(settings, text_only) for _ in range(max(1, workers))]

    def generate(self, requests, sampling: Sampling | None = None, schema=None, on_answer=None) -> list[Completion]:
        """Each actor validates and repairs its own share; `on_answer` hears of them when all shares are back."""
        import ray

        requests = list(requests)
        size = math.ceil(len(requests) / len(self.actors)) or 1
        shards = [requests[i : i + size] for i in range(0, len(requests), size)]
        futures = [
            a.generate.remote(shard, sampling or Sampling(), schema)
            for a, shard in zip(self.actors, shards, strict=False)
        ]
        completions = [c for shard in ray.get(futures) for c in shard]
        for i, completion in enumerate(completions):
            self._finished(i, completion, on_answer)
        return completions

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
