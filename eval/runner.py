"""The task runner: task -> predictions.jsonl (append-only, keyed by sample id) -> metrics.json.

Resumable: each chunk of predictions is written and fsynced as soon as it returns, and a restarted run
skips every sample already in the file, so a run killed at any point (SIGKILL included) finishes with no
sample lost, redone or duplicated. Shardable: `shard=(i, n)` takes every n-th sample of a fixed order and
writes `predictions.shard-i-of-n.jsonl`; an unsharded run in the same folder first takes in the shards'
records. Samples are ordered by a hash of their id, so `limit` gives a mixed subset and never depends on
what has run before.

Pipelines: `direct` (image, clip or rendered series + normal references + optional rule book -> Verdict)
and `mcq` (MMAD-style multiple choice, one question a request).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axr.eval.datasets import LayoutError, load_samples
from axr.eval.metrics import task_metrics
from axr.eval.tasks import PIPELINES, task_file_path
from axr.reasoning.backends.base import Backend, Sampling, system, user
from axr.reasoning.deduction import DirectItem, direct
from axr.reasoning.journal import Journal
from axr.reasoning.media import MediaError, even_frames, load_image, render_series, sample_frames
from axr.reasoning.prompting import render
from axr.reasoning.rulebook_import import load_rules
from axr.reasoning.schema import ChoiceAnswer, RuleBook, Sample, SchemaError

KEPT_META = ("category", "question_type", "question", "options", "masks", "moments", "start")


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


def select_samples(samples: list[Sample], limit: int | None, shard: tuple[int, int]) -> list[Sample]:
    ordered = sorted(samples, key=lambda s: hashlib.sha1(s.sample_id.encode()).hexdigest())
    if limit is not None:
        ordered = ordered[:limit]
    index, count = shard
    return ordered[index::count]


def predictions_path(output: Path, shard: tuple[int, int]) -> Path:
    index, count = shard
    return output / ("predictions.jsonl" if count == 1 else f"predictions.shard-{index}-of-{count}.jsonl")


class MediaLoader:
    """Query and reference images for samples: images, clips (evenly spaced frames), rendered series."""

    def __init__(self, task: dict[str, Any]):
        self.dataset, self.pipeline = task["dataset"], task["pipeline"]
        self.count = int(self.pipeline.get("references", {}).get("count", 0))
        self._train: dict[str, list[Sample]] | None = None
        self._cache: dict[str, Any] = {}
        self.verdicts: dict[str, Any] = {}  # mcq_from_verdict: one verdict per image, shared by its questions
        self._embedder = None

    def embedder(self):
        if self._embedder is None:
            from axr.reasoning.embedding import Embedder

            self._embedder = Embedder()
        return self._embedder

    def query(self, sample: Sample) -> list:
        if sample.image_path:
            return [load_image(sample.image_path)]
        if sample.video_path:
            video = self.pipeline.get("video", {})
            frames = sample_frames(sample.video_path, fps=video.get("fps", 1.0))
            return [f.image for f in even_frames(frames, int(video.get("frames", 8)))]
        if sample.series:
            return [render_series(sample.series)]
        raise MediaError(f"{sample.sample_id}: no image, video or series to show a model")

    def references(self, sample: Sample) -> list:
        """The sample's own references (MMAD templates), else the first normal train samples of its category
        (images, or the first frames of clips, or rendered series windows)."""
        if not self.count:
            return []
        if sample.references:
            return [self._cached(path, lambda p=path: load_image(p)) for path in sample.references[: self.count]]
        return [
            self._cached(ref.sample_id, lambda r=ref: self.query(r)[0])
            for ref in self._category_references(sample.meta.get("category"))
        ]

    def _cached(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _category_references(self, category: str | None) -> list[Sample]:
        if self._train is None:
            self._train = {}
            try:
                train = load_samples(
                    self.dataset["adapter"], dataset_root(self.dataset), "train", **self.dataset.get("options", {})
                )
            except LayoutError:
                train = []  # the dataset has no normal training split: no references
            for ref in sorted(train, key=lambda s: s.sample_id):
                if ref.gt_label == 0:
                    self._train.setdefault(ref.meta.get("category"), []).append(ref)
        return self._train.get(category, [])[: self.count]


def dataset_root(dataset: dict[str, Any]) -> Path | None:
    root = task_file_path(dataset.get("data_dir"))
    if root is None and dataset["adapter"] == "textile":
        from axr.eval.datasets.textile import default_root

        return default_root()
    return root


def load_task_samples(task: dict[str, Any]) -> list[Sample]:
    dataset = task["dataset"]
    return load_samples(
        dataset["adapter"], dataset_root(dataset), dataset.get("split", "test"), **dataset.get("options", {})
    )


def load_rulebook(task: dict[str, Any]) -> RuleBook | None:
    rules = task["pipeline"].get("rules")
    return load_rules(task_file_path(rules)) if rules else None


def run_task(
    task: dict[str, Any],
    output: Path,
    backend: Backend,
    options: RunOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the task's pending samples and return its metrics (also written to metrics.json, unsharded)."""
    options = options or RunOptions()
    pipeline = task["pipeline"]
    if pipeline.get("mode", "direct") not in PIPELINES:
        raise SchemaError(f"task {task['task']}: pipeline.mode must be one of {', '.join(PIPELINES)}")
    book = load_rulebook(task)
    chosen = select_samples(load_task_samples(task), options.limit, options.shard)
    output.mkdir(parents=True, exist_ok=True)
    journal = Journal(predictions_path(output, options.shard))
    if options.shard[1] == 1:
        _take_in_shards(journal, output)
    pending = [
        s
        for s in chosen
        if s.sample_id not in journal or (options.retry_errors and journal.records[s.sample_id]["status"] == "error")
    ]
    if on_start:
        on_start(len(chosen), len(pending))
    loader = MediaLoader(task)
    batch = int(pipeline.get("batch", 8))
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        began = time.perf_counter()
        records = _predict(chunk, loader, backend, book, task)
        share = (time.perf_counter() - began) / len(chunk)
        for record in records:
            record["seconds"] = round(share, 4)
        journal.append(records, replace=options.retry_errors)
        if on_chunk:
            on_chunk(len(chunk))
    wanted = {s.sample_id for s in chosen}
    records = [r for key, r in journal.records.items() if key in wanted]
    metrics = task_metrics(records, task, book)
    metrics.update(task=task["task"], shard=list(options.shard), samples=len(records), backend=backend.describe())
    name = "metrics.json" if options.shard[1] == 1 else f"metrics.shard-{options.shard[0]}-of-{options.shard[1]}.json"
    (output / name).write_text(json.dumps(metrics, indent=2))
    (output / "task.json").write_text(json.dumps(task, indent=2))
    return metrics


def _take_in_shards(journal: Journal, output: Path) -> None:
    for shard_file in sorted(output.glob("predictions.shard-*.jsonl")):
        journal.append(list(Journal(shard_file).records.values()))


def _predict(chunk: list[Sample], loader: MediaLoader, backend: Backend, book, task) -> list[dict[str, Any]]:
    """Records for one chunk: bad media becomes an error record, the rest go to the model in one batch."""
    ready, records = [], {}
    for sample in chunk:
        try:
            ready.append((sample, loader.query(sample), loader.references(sample)))
        except (MediaError, OSError) as error:
            records[sample.sample_id] = {**_base(sample), "status": "error", "error": str(error)}
    mode = task["pipeline"].get("mode", "direct")
    if ready and mode == "mcq":
        records.update(_ask_choices(ready, backend))
    elif ready and mode == "mcq_from_verdict":
        records.update(_choices_from_verdicts(ready, backend, book, task, loader))
    elif ready:
        records.update(_ask_verdicts(ready, backend, book, task))
    return [records[s.sample_id] for s in chunk]


def _choices_from_verdicts(ready, backend: Backend, book, task, loader: MediaLoader) -> dict[str, dict[str, Any]]:
    """One verdict per image (kept for the image's other questions), each question answered from it."""
    from axr.eval.mcq_from_verdict import option_from_verdict

    fresh = {
        s.meta["image_key"]: (s, images, refs)
        for s, images, refs in ready
        if s.meta["image_key"] not in loader.verdicts
    }
    if fresh:
        items = [DirectItem(s.sample_id, images, refs) for s, images, refs in fresh.values()]
        sampling = Sampling(max_tokens=int(task["pipeline"].get("max_tokens", 512)))
        verdicts = direct(backend, items, book, domain=task["pipeline"].get("domain", "object"), sampling=sampling)
        loader.verdicts.update(zip(fresh, verdicts, strict=True))
    out = {}
    for sample, _, _ in ready:
        verdict = loader.verdicts[sample.meta["image_key"]]
        letter = option_from_verdict(sample.meta["question_type"], sample.meta["options"], verdict, loader.embedder())
        first = fresh.get(sample.meta["image_key"], (None,))[0] is sample  # the question that paid for the call
        meta = verdict.meta
        cost = (
            _cost(meta.get("tokens_in", 0), meta.get("tokens_out", 0), meta.get("repaired", False))
            if first
            else {"calls": 0, "tokens_in": 0, "tokens_out": 0}
        )
        status = "error" if meta.get("request_error") else "ok"
        out[sample.sample_id] = {
            **_base(sample),
            "status": status,
            "answer": letter,
            "verdict": verdict.model_dump(mode="json"),
            "cost": cost,
        }
    return out


def _ask_verdicts(ready, backend: Backend, book, task) -> dict[str, dict[str, Any]]:
    pipeline = task["pipeline"]
    items = [DirectItem(sample.sample_id, images, references) for sample, images, references in ready]
    sampling = Sampling(max_tokens=int(pipeline.get("max_tokens", 512)))
    verdicts = direct(backend, items, book, domain=pipeline.get("domain", "object"), sampling=sampling)
    out = {}
    for (sample, _, _), verdict in zip(ready, verdicts, strict=True):
        error = verdict.meta.get("request_error")
        meta = verdict.meta
        record = {
            **_base(sample),
            "status": "error" if error else "ok",
            "verdict": verdict.model_dump(mode="json"),
            "cost": _cost(meta.get("tokens_in", 0), meta.get("tokens_out", 0), meta.get("repaired", False)),
        }
        if error:
            record["error"] = error
        out[sample.sample_id] = record
    return out


def _ask_choices(ready, backend: Backend) -> dict[str, dict[str, Any]]:
    from axr.eval.verify import choice_letter

    requests = []
    for sample, images, references in ready:
        prompt = render(
            "mcq",
            question=sample.meta["question"],
            options=sample.meta["options"],
            n_references=len(references),
            schema=ChoiceAnswer,
        )
        requests.append([system(prompt), user("Answer the question about the last image.", [*references, *images])])
    completions = backend.generate(requests, Sampling(max_tokens=160), ChoiceAnswer)
    out = {}
    for (sample, _, _), completion in zip(ready, completions, strict=True):
        letter = (
            completion.parsed.answer if completion.parsed else choice_letter(completion.text, sample.meta["options"])
        )
        letter = letter if letter in sample.meta["options"] else None
        record = {
            **_base(sample),
            "status": "error" if completion.error else "ok",
            "answer": letter,
            "raw": completion.text[:2000],
            "cost": _cost(completion.tokens_in, completion.tokens_out, completion.repaired),
        }
        if completion.error:
            record["error"] = completion.error
        out[sample.sample_id] = record
    return out


def _cost(tokens_in: int, tokens_out: int, repaired: bool) -> dict[str, int]:
    return {"calls": 1 + int(bool(repaired)), "tokens_in": tokens_in, "tokens_out": tokens_out}


def _base(sample: Sample) -> dict[str, Any]:
    """What a record keeps of its sample, so metrics, judges and reports need only the predictions file."""
    gt = sample.model_dump(include={"gt_label", "gt_type", "gt_box", "gt_span", "gt_mask", "gt_rationale"})
    media = sample.image_path or sample.video_path
    keep = {k: v for k, v in sample.meta.items() if k in KEPT_META}
    if "answer" in sample.meta:
        keep["gt_answer"] = sample.meta["answer"]
    return {"sample_id": sample.sample_id, "media": media, **gt, **keep}
