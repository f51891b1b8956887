"""`axr eval suite`: the caption detector on several caption sets, under one or more settings, beside
AnomalyRuler-base computed by AXR on the same held-out videos and the published figures where a task states
them. No model is called; the detector is the one `axr eval run` and `axr detect` use.

A set is a caption task (`ped2`), or a task's settings and rule book over another folder in the same layout
(`ped2@path/to/captions`: another captioner's captions of ped2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from axr.eval import anomalyruler_base
from axr.eval.datasets.captions import task_rulebook, task_videos
from axr.eval.metrics import frame_metrics
from axr.eval.tasks import TaskError, all_tasks, load_task, parse_assignment, task_file_path
from axr.reasoning.caption_detector import CaptionDetector
from axr.reasoning.resources import DataError

BASELINE = "AnomalyRuler-base"


@dataclass
class CaptionSet:
    label: str
    task: str
    data_dir: str | None = None  # None: the task's own folder

    @classmethod
    def parse(cls, text: str) -> CaptionSet:
        """`TASK` or `TASK@FOLDER` (labelled by the folder's name)."""
        task, _, folder = text.partition("@")
        return cls(Path(folder).name if folder else task, task, folder or None)


@dataclass
class Variant:
    label: str
    overrides: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        """`LABEL:key=value[,key=value]` with task keys (`pipeline.trigger.synonyms=0.75`), or `LABEL` alone
        for the defaults."""
        label, _, assignments = text.partition(":")
        pairs = [parse_assignment(a, "--variant") for a in assignments.split(",") if a.strip()]
        return cls(label.strip() or "axr", dict(pairs))


def caption_tasks() -> list[str]:
    """Shipped caption tasks whose data and rule book are on this machine (embedded or fetched)."""
    names = []
    for name in all_tasks():
        task = load_task(name)
        if task.pipeline.mode != "captions" or task.dataset.data_dir is None:
            continue
        try:
            task_file_path(task.dataset.data_dir), task_file_path(task.pipeline.rules)
        except DataError:
            continue
        names.append(name)
    return names


def measure_set(caption_set: CaptionSet, variants: list[Variant], embedder, common: dict | None = None) -> dict:
    """One row: the set's split, AnomalyRuler-base and each variant on its held-out videos (pooled and
    per-video-mean frame AUC, %), and the task's published figures. `common`: task overrides of every
    variant (a variant's own come after)."""
    common = common or {}
    base_task = _task(caption_set, common)
    reference, held_out, problems = task_videos(base_task)
    labels = {v.video: v.labels for v in held_out}
    row = {
        "set": caption_set.label,
        "task": caption_set.task,
        "evaluated_videos": len(held_out),
        "frames": sum(len(v.captions) for v in held_out),
        "skipped_videos": sorted(problems),
    }
    baseline = {v.video: anomalyruler_base.video_scores(v.captions) for v in held_out}
    row[BASELINE] = _aucs(labels, baseline)
    for variant in variants:
        task = _task(caption_set, {**common, **variant.overrides})
        detector = CaptionDetector(
            task_rulebook(task), task.pipeline, task.split.scene_pattern, embedder, task.dataset.line_seconds
        )
        detection = detector.fit(reference, held_out).score(held_out)
        row[variant.label] = _aucs(labels, detection.scores)
    published = (base_task.published or {}).get("frame_auc_pooled") if caption_set.data_dir is None else None
    row["published"] = {k: round(100 * v, 2) for k, v in (published or {}).items()}
    return row


def _task(caption_set: CaptionSet, overrides: dict):
    given = dict(overrides)
    if caption_set.data_dir:
        given["dataset.data_dir"] = caption_set.data_dir
    task = load_task(caption_set.task, given)
    if task.pipeline.mode != "captions":
        raise TaskError(f"{caption_set.task}: not a caption task (pipeline.mode is {task.pipeline.mode})")
    return task


def _aucs(labels: dict, scores: dict) -> dict:
    metrics = frame_metrics(labels, scores, 0.5)
    per_video = metrics["frame_auc_per_video_mean"]
    return {
        "pooled": round(100 * metrics["frame_auc_pooled"], 2),
        "per_video": None if per_video is None else round(100 * per_video, 2),
    }


def mean_row(rows: list[dict], columns: list[str]) -> dict:
    """The mean of each column's pooled and per-video AUC over the rows."""
    out = {"set": "mean", "task": "", "evaluated_videos": sum(r["evaluated_videos"] for r in rows)}
    for column in columns:
        out[column] = {
            key: round(float(np.mean([r[column][key] for r in rows if r[column][key] is not None])), 2)
            for key in ("pooled", "per_video")
        }
    return out
