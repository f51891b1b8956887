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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axr.eval.pipelines import PIPELINES, captions, endpoint
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


def evaluate(
    task: TaskConfig,
    output: Path,
    backend_for: Callable[..., Backend],
    options: RunOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run a task of any mode; `backend_for(settings, text_only=False)` makes the backend its settings name
    (only when one is needed); `on_progress(done, total)` counts samples (caption tasks: re-checked frames)."""
    if task.mode == "captions":  # captions are text: an openai server is sent no image parts
        text_backend = lambda settings: backend_for(settings, text_only=settings.backend == "openai")  # noqa: E731
        return captions.run(task, output, text_backend, on_message, on_progress)
    with backend_for(endpoint(task)) as backend:
        return run_task(task, output, backend, options, on_progress, on_message)


def run_task(
    task: TaskConfig,
    output: Path,
    backend: Backend,
    options: RunOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run a sample task's pending samples and return its metrics (also written to metrics.json, unsharded)."""
    options = options or RunOptions()
    mode = PIPELINES[task.mode]
    book = load_rulebook(task)
    chosen = select_samples(load_task_samples(task), options.limit, options.shard)
    output.mkdir(parents=True, exist_ok=True)
    journal = Journal(predictions_path(output, options.shard))
    if options.shard[1] == 1:
        _take_in_shards(journal, output)
    retried = options.retry_errors
    pending = [
        s
        for s in chosen
        if s.sample_id not in journal or (retried and journal.records[s.sample_id]["status"] == "error")
    ]
    if on_message and len(pending) < len(chosen):
        on_message(f"resuming: {len(chosen) - len(pending)} of {len(chosen)} samples already done")
    loader, state = MediaLoader(task), {}
    done = len(chosen) - len(pending)
    if on_progress:
        on_progress(done, len(chosen))
    for start in range(0, len(pending), task.pipeline.batch):
        chunk = pending[start : start + task.pipeline.batch]
        began = time.perf_counter()
        records = _predict(chunk, loader, lambda ready: mode.predict(ready, backend, book, task, state))
        share = (time.perf_counter() - began) / len(chunk)
        for record in records:
            record["seconds"] = round(share, 4)
        journal.append(records, replace=retried)
        done += len(chunk)
        if on_progress:
            on_progress(done, len(chosen))
    wanted = {s.sample_id for s in chosen}
    records = [upgraded(r) for key, r in journal.records.items() if key in wanted]
    metrics = _metrics(records, task, book)
    metrics.update(task=task.task, shard=list(options.shard), samples=len(records), backend=backend.describe())
    index, count = options.shard
    name = "metrics.json" if count == 1 else f"metrics.shard-{index}-of-{count}.json"
    (output / name).write_text(json.dumps(metrics, indent=2))
    (output / "task.json").write_text(task.model_dump_json(indent=2))
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
    }
    return {"errors": len(records) - len(ok), "cost": cost, **PIPELINES[task.mode].metrics(ok, task, book)}


def _take_in_shards(journal: Journal, output: Path) -> None:
    for shard_file in sorted(output.glob("predictions.shard-*.jsonl")):
        journal.append(list(Journal(shard_file).records.values()))


def _predict(chunk: list[Sample], loader: MediaLoader, predict) -> list[dict[str, Any]]:
    """Records for one chunk: bad media becomes an error record, the rest go to the model in one batch."""
    ready, records = [], {}
    for sample in chunk:
        try:
            ready.append((sample, loader.query(sample), loader.references(sample)))
        except (MediaError, OSError) as error:
            records[sample.sample_id] = error_record(sample, str(error))
    if ready:
        records.update(predict(ready))
    return [records[s.sample_id] for s in chunk]
