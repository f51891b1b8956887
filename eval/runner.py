"""The task runner, one for every pipeline mode and engine: task -> predictions.jsonl (append-only, keyed by
sample id) -> metrics.json.

Resumable: each chunk of records is written and fsynced as soon as it returns, and a restarted run skips
every sample already in the file, so a run killed at any point (SIGKILL included) finishes with no sample
lost, redone or duplicated. Shardable: `shard=(i, n)` takes every n-th sample of a fixed order and writes
`predictions.shard-i-of-n.jsonl`; an unsharded run in the same folder first takes in the shards' records.
What a sample's records are belongs to the task's pipeline mode (`axr.eval.pipelines`); where the chunks
are predicted belongs to the engine (`predictions`: this process, or a Ray actor pool).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axr.eval.pipelines import pipeline_for
from axr.eval.pipelines.base import BackendMaker, Pipeline
from axr.eval.records import PredictionRecord, RecordJournal
from axr.eval.samples import select_samples
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Backend
from axr.reasoning.schema import Cost, Sample


@dataclass
class RunOptions:
    shard: tuple[int, int] = (0, 1)
    limit: int | None = None
    retry_errors: bool = False
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); None starts one here
    workers: int = 1  # ray: model replicas (actors), each holding one backend


# (pipeline, pending samples, backend maker) -> lists of records, as chunks finish
Predictions = Callable[[Pipeline, list[Sample], BackendMaker], Iterator[list[PredictionRecord]]]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n, e.g. '0/4' for the first of four machines."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def predictions_path(output: Path, shard: tuple[int, int]) -> Path:
    index, count = shard
    return output / ("predictions.jsonl" if count == 1 else f"predictions.shard-{index}-of-{count}.jsonl")


class LazyBackend:
    """The backend a run needs, made on first use only (a caption task without a re-check never makes one);
    whoever makes a LazyBackend closes it."""

    def __init__(self, make: Callable[[], Backend]):
        self.make, self.backend = make, None

    def __call__(self) -> Backend:
        if self.backend is None:
            self.backend = self.make()
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


def local_predictions(pipeline: Pipeline, pending: list[Sample], backend: BackendMaker):
    """Chunk after chunk in this process, each record carrying its share of the chunk's time."""
    batch = getattr(pipeline.task.pipeline, "batch", 1)
    for start in range(0, len(pending), batch):
        yield timed(pipeline, pending[start : start + batch], backend)


def timed(pipeline: Pipeline, chunk: list[Sample], backend: BackendMaker) -> list[PredictionRecord]:
    began = time.perf_counter()
    records = pipeline.predict(chunk, backend)
    share = round((time.perf_counter() - began) / max(len(records), 1), 4)
    for record in records:  # fresh from predict, nobody else holds them: set in place, no copies
        record.seconds = share
    return records


def run(
    task: TaskConfig,
    output: Path,
    backend: BackendMaker,
    options: RunOptions | None = None,
    predictions: Predictions = local_predictions,
    described: dict[str, Any] | None = None,
    on_progress: Callable[..., None] | None = None,
    on_message: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a task of any mode: set up, journal the records `predictions` yields for the pending samples as
    each list arrives, finalize, then write and return the metrics. `backend()` returns the run's backend (a
    LazyBackend makes it on first use; the caller closes it). `on_progress(done, total)` counts samples; a
    named phase of the mode (induction, re-check) adds a third argument, its name."""
    options = options or RunOptions()
    pipeline = pipeline_for(task)

    def on_phase(name: str):
        return (lambda done, total: on_progress(done, total, name)) if on_progress else None

    pipeline.setup(backend, on_message, on_phase)
    chosen = select_samples(pipeline.samples(), options.limit, options.shard)
    output.mkdir(parents=True, exist_ok=True)
    journal = RecordJournal(predictions_path(output, options.shard))
    if options.shard[1] == 1:
        _take_in_shards(journal, output)
    units = journal.units()
    pending = [s for s in chosen if s.sample_id not in units or _retried(units[s.sample_id], options)]
    if len(pending) < len(chosen):
        on_message(f"resuming: {len(chosen) - len(pending)} of {len(chosen)} samples already done")
    done = len(chosen) - len(pending)
    if on_progress:
        on_progress(done, len(chosen))
    retried = {s.sample_id for s in pending if s.sample_id in units}
    for records in predictions(pipeline, pending, backend) if pending else ():
        journal.put(records, retried)  # a retried sample's new records replace all its old ones
        done += len({r.unit for r in records})
        if on_progress:
            on_progress(done, len(chosen))
    wanted = {s.sample_id for s in chosen}
    records = [r for r in journal.records.values() if r.unit in wanted]
    final = pipeline.finalize(records, output, backend, on_message, on_phase)
    before = {r.sample_id: r for r in records}
    changed = [r for r in final if before.get(r.sample_id) is not r and before.get(r.sample_id) != r]
    if changed:  # what finalize changed (a caption re-check's merge): one line per sample again
        journal.append(changed, replace=True)
        journal.compact()
    metrics = _metrics(final, pipeline)
    described = described or pipeline.endpoint.model_dump(include={"backend", "model"})
    metrics.update(task=task.task, shard=list(options.shard), samples=len(final), backend=described)
    index, count = options.shard
    name = "metrics.json" if count == 1 else f"metrics.shard-{index}-of-{count}.json"
    (output / name).write_text(json.dumps(metrics, indent=2))
    (output / "task.json").write_text(task.public_json())
    return metrics


def _metrics(records: list[PredictionRecord], pipeline: Pipeline) -> dict[str, Any]:
    """The mode's metrics on the answered records, with the errors and the cost of all of them."""
    ok = [r for r in records if r.ok]
    spent = sum((r.cost for r in records), Cost())
    cost = {
        **spent.model_dump(),
        "seconds": round(sum(r.seconds for r in records), 2),
        "request_errors": sum(r.error_kind == "request" for r in records),  # the server gave no answer
    }
    figures = pipeline.metrics(ok)
    cost.update(figures.pop("cost", {}))
    return {"errors": len(records) - len(ok), "cost": cost, **figures}


def _retried(records: list[PredictionRecord], options: RunOptions) -> bool:
    """A request that got no answer is asked again by any rerun; unreadable media only with --retry-errors."""
    failed = [r for r in records if not r.ok]
    return any(options.retry_errors or r.error_kind == "request" for r in failed)


def _take_in_shards(journal: RecordJournal, output: Path) -> None:
    for shard_file in sorted(output.glob("predictions.shard-*.jsonl")):
        journal.append(RecordJournal(shard_file).records.values())
