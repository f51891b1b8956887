"""The task runner: task -> predictions.jsonl (append-only, keyed by sample id) -> metrics.json.

Resumable: each chunk of predictions is written and fsynced as soon as it returns, and a restarted run
skips every sample already in the file, so a run killed at any point (SIGKILL included) finishes with no
sample lost, redone or duplicated. Shardable: `shard=(i, n)` takes every n-th sample of a fixed order and
writes `predictions.shard-i-of-n.jsonl`; an unsharded run in the same folder first takes in the shards'
records. What a chunk's prediction is belongs to the task's pipeline mode (`axr.eval.pipelines`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axr.eval.pipelines import PIPELINES
from axr.eval.records import error_record, upgraded
from axr.eval.samples import MediaLoader, load_rulebook, load_task_samples, select_samples
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import Backend
from axr.reasoning.journal import Journal
from axr.reasoning.media import MediaError
from axr.reasoning.schema import Sample


@dataclass
class RunOptions:
    shard: tuple[int, int] = (0, 1)
    limit: int | None = None
    retry_errors: bool = False
    engine: str = "local"  # local | ray
    ray_address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); None starts one here
    workers: int = 1  # ray: model replicas (actors), each holding one backend


Predictions = Callable[[TaskConfig, list[Sample], Any], Iterator[list[dict[str, Any]]]]


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


def run_task(
    task: TaskConfig,
    output: Path,
    backend: Backend,
    options: RunOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run a sample task's pending samples with one backend in this process; returns the metrics."""
    described = backend.describe()
    return run_samples(task, output, local_predictions(backend), described, options, on_progress, on_message)


def local_predictions(backend: Backend) -> Predictions:
    """Chunk after chunk in this process, one batched call each."""

    def predict(task: TaskConfig, pending: list[Sample], book) -> Iterator[list[dict[str, Any]]]:
        predictor = ChunkPredictor(task, backend, book)
        for start in range(0, len(pending), task.pipeline.batch):
            yield predictor(pending[start : start + task.pipeline.batch])

    return predict


class ChunkPredictor:
    """Records for chunks of samples with one backend: media loaded here (bad media becomes an error record),
    the rest sent to the model in one batch by the task's pipeline mode. The Ray engine runs one per actor."""

    def __init__(self, task: TaskConfig, backend: Backend, book):
        self.task, self.backend, self.book = task, backend, book
        self.mode, self.loader, self.state = PIPELINES[task.mode], MediaLoader(task), {}

    def __call__(self, chunk: list[Sample]) -> list[dict[str, Any]]:
        began = time.perf_counter()
        ready, records = [], {}
        for sample in chunk:
            try:
                ready.append((sample, self.loader.query(sample), self.loader.references(sample)))
            except (MediaError, OSError) as error:
                records[sample.sample_id] = error_record(sample, str(error))
        if ready:
            records.update(self.mode.predict(ready, self.backend, self.book, self.task, self.state))
        share = round((time.perf_counter() - began) / max(len(chunk), 1), 4)
        return [{**records[s.sample_id], "seconds": share} for s in chunk]


def run_samples(
    task: TaskConfig,
    output: Path,
    predictions: Predictions,
    described: dict[str, Any],
    options: RunOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Journal the records `predictions` yields for the task's pending samples as each list arrives, then
    write and return the metrics (metrics.json, unsharded). Engines differ only in `predictions`."""
    options = options or RunOptions()
    book = load_rulebook(task)
    chosen = select_samples(load_task_samples(task), options.limit, options.shard)
    output.mkdir(parents=True, exist_ok=True)
    journal = Journal(predictions_path(output, options.shard))
    if options.shard[1] == 1:
        _take_in_shards(journal, output)
    pending = [s for s in chosen if s.sample_id not in journal or _retried(journal.records[s.sample_id], options)]
    if on_message and len(pending) < len(chosen):
        on_message(f"resuming: {len(chosen) - len(pending)} of {len(chosen)} samples already done")
    done = len(chosen) - len(pending)
    if on_progress:
        on_progress(done, len(chosen))
    for records in predictions(task, pending, book) if pending else ():
        journal.append(records, replace=True)  # pending samples are new or retried: the later line wins
        done += len(records)
        if on_progress:
            on_progress(done, len(chosen))
    wanted = {s.sample_id for s in chosen}
    records = [upgraded(r) for key, r in journal.records.items() if key in wanted]
    metrics = _metrics(records, task, book)
    metrics.update(task=task.task, shard=list(options.shard), samples=len(records), backend=described)
    index, count = options.shard
    name = "metrics.json" if count == 1 else f"metrics.shard-{index}-of-{count}.json"
    (output / name).write_text(json.dumps(metrics, indent=2))
    (output / "task.json").write_text(task.public_json())
    return metrics


def _metrics(records: list[dict], task: TaskConfig, book) -> dict[str, Any]:
    """The mode's metrics on the answered records, with the errors and the cost of all of them."""
    ok = [r for r in records if r["status"] == "ok"]
    costs = [r.get("cost", {}) for r in records]
    cost = {
        "model_calls": sum(c.get("calls", 0) for c in costs),
        "tokens_in": sum(c.get("tokens_in", 0) for c in costs),
        "tokens_out": sum(c.get("tokens_out", 0) for c in costs),
        "seconds": round(sum(r.get("seconds", 0.0) for r in records), 2),
        "request_errors": sum(r.get("error_kind") == "request" for r in records),  # the server gave no answer
    }
    return {"errors": len(records) - len(ok), "cost": cost, **PIPELINES[task.mode].metrics(ok, task, book)}


def _retried(record: dict[str, Any], options: RunOptions) -> bool:
    """A request that got no answer is asked again by any rerun; unreadable media only with --retry-errors."""
    if record["status"] != "error":
        return False
    return (
        options.retry_errors or record.get("error_kind", "request" if record.get("verdict") else "media") == "request"
    )


def _take_in_shards(journal: Journal, output: Path) -> None:
    for shard_file in sorted(output.glob("predictions.shard-*.jsonl")):
        journal.append(list(Journal(shard_file).records.values()))
