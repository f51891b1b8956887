"""A task's samples and what a model is shown of them: the query media and the normal references.

Samples are ordered by a hash of their id, so `limit` gives a mixed subset that never depends on what has
run before, and `shard=(i, n)` takes every n-th of that order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from axr.eval.datasets import LayoutError, load_samples
from axr.eval.task_config import DatasetConfig, TaskConfig
from axr.eval.tasks import task_file_path
from axr.reasoning.media import MediaError, even_frames, load_image, render_series, sample_frames
from axr.reasoning.rulebook_import import load_rules
from axr.reasoning.schema import RuleBook, Sample


def select_samples(samples: list[Sample], limit: int | None, shard: tuple[int, int]) -> list[Sample]:
    ordered = sorted(samples, key=lambda s: hashlib.sha1(s.sample_id.encode()).hexdigest())
    if limit is not None:
        ordered = ordered[:limit]
    index, count = shard
    return ordered[index::count]


def dataset_root(dataset: DatasetConfig) -> Path | None:
    root = task_file_path(dataset.data_dir)
    if root is None and dataset.adapter == "textile":
        from axr.eval.datasets.textile import default_root

        return default_root()
    return root


def load_task_samples(task: TaskConfig, split: str | None = None) -> list[Sample]:
    dataset = task.dataset
    return load_samples(dataset.adapter, dataset_root(dataset), split or dataset.split, **dataset.options)


def load_rulebook(task: TaskConfig) -> RuleBook | None:
    rules = task.pipeline.rules
    return load_rules(task_file_path(rules)) if rules else None


class MediaLoader:
    """Query and reference images for samples: images, clips (evenly spaced frames), rendered series."""

    def __init__(self, task: TaskConfig):
        self.task, self.pipeline = task, task.pipeline
        self.count = self.pipeline.references.count
        self._train: dict[str, list[Sample]] | None = None
        self._cache: dict[str, Any] = {}

    def query(self, sample: Sample) -> list:
        if sample.meta.get("load_error"):  # a dataset line that could not be read: recorded, not run
            raise MediaError(sample.meta["load_error"])
        if sample.image_path:
            return [load_image(sample.image_path)]
        if sample.video_path:
            video = self.pipeline.video
            frames = sample_frames(sample.video_path, fps=video.fps)
            return [f.image for f in even_frames(frames, video.frames)]
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
                train = load_task_samples(self.task, "train")
            except LayoutError:
                train = []  # the dataset has no normal training split: no references
            for ref in sorted(train, key=lambda s: s.sample_id):
                if ref.gt_label == 0:
                    self._train.setdefault(ref.meta.get("category"), []).append(ref)
        return self._train.get(category, [])[: self.count]
