"""captions: a caption set -> trigger stage -> optional model re-check -> smoothing -> frame-level metrics,
all by the one caption detector (`axr.reasoning.caption_detector`, which `axr detect` runs too).

Outputs in the run folder: `predictions.jsonl` (one record per evaluated frame in the shape of
`axr.eval.records`, plus its trigger score, keyword hits and novelty; `verdict` is the model's re-check
where there was one), `metrics.json` (frame-level metrics, the split, the settings, cost), and
`rulebook.yaml` (the book that was used).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from axr.eval.datasets.captions import task_rulebook, task_videos
from axr.eval.metrics import frame_metrics
from axr.eval.task_config import TaskConfig
from axr.eval.tasks import task_file_path
from axr.reasoning.caption_detector import CaptionDetector, DetectorSettings
from axr.reasoning.schema import RuleBook, SchemaError

ADAPTER = "anomalyruler_captions"
METRICS = {
    "frame_auc_pooled",
    "frame_auc_per_video_mean",
    "frame_ap",
    "frame_f1_max",
    "frame_accuracy",
    "frame_precision",
    "frame_recall",
    "frame_f1",
    "frame_balanced_accuracy",
}


def validate(task: TaskConfig) -> list[str]:
    if task.dataset.adapter != ADAPTER:
        return [f"dataset.adapter {task.dataset.adapter!r}: caption tasks read the {ADAPTER} layout"]
    return []


def run(
    task: TaskConfig,
    output: Path,
    backend_for: Callable,
    on_message: Callable[[str], None] = print,
    on_progress: Callable[..., None] | None = None,
) -> dict:
    """Run one caption task; returns and writes the metrics. `backend_for(task.pipeline.recheck)` is called
    only when a model is needed; `on_progress(done, total, phase)` follows the induction answer by answer
    and the re-check frame by frame."""

    def phase(name: str):
        return (lambda done, total: on_progress(done, total, name)) if on_progress else None

    started = time.perf_counter()
    pipeline = task.pipeline
    induced = pipeline.rules == "induce"
    if pipeline.rules is None:
        raise SchemaError("task: pipeline.rules is required (or --rules): a rule book file, or 'induce'")
    reference, held_out, skipped = task_videos(task)
    for problem in skipped:
        on_message(f"skipped a video: {problem}")
    settings = DetectorSettings.from_config(pipeline, task.split)
    embedder = None
    if settings.novelty or induced:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    if induced:
        normal_frames = [(v.frame_id(i), c) for v in reference for i, c in enumerate(v.captions) if v.labels[i] == 0]
        rulebook = _induce(task, normal_frames, embedder, backend_for, on_message, phase("induction"))
    else:
        rulebook = task_rulebook(task)
    n_references = sum(len(v.normal_captions()) for v in reference)
    on_message(
        f"{len(reference) + len(held_out)} videos: {len(reference)} reference ({n_references} normal frames), "
        f"{len(held_out)} evaluated; rule book {rulebook.name} ({len(rulebook.rules('anomaly'))} anomaly rules)"
    )
    detector = CaptionDetector(rulebook, settings, embedder).fit(reference, held_out)
    if settings.synonyms:
        on_message(f"synonyms added from the observations: {detector.synonyms}")
    detection = detector.score(held_out)
    output.mkdir(parents=True, exist_ok=True)
    recheck = pipeline.recheck
    labels = {v.video: v.labels for v in held_out}
    ceiling = detector.ceiling_scores(held_out, detection) if recheck.policy != "none" else None
    detector.recheck(
        held_out, detection, lambda: backend_for(recheck), output, recheck.model, phase("re-check"), on_message
    )
    metrics = frame_metrics(labels, detection.scores, detection.threshold)
    if ceiling is not None:
        metrics["recheck_quality"] = _recheck_quality(labels, detection, ceiling)
    stage = detector.stages["all"]
    metrics.update(
        task=task.task,
        rules="induced" if induced else str(task_file_path(pipeline.rules)),
        split={
            "reference_videos": [v.video for v in reference],
            "evaluated_videos": len(held_out),
            "reference_normal_frames": n_references,
            "skipped_videos": skipped,
        },
        keywords={k: sorted(w) for k, w in stage.keywords.items()},
        dropped_keywords=sorted(stage.dropped),
        scenes=sorted(k for k in detector.stages if k != "all"),
        settings=pipeline.model_dump(
            include={"trigger", "smoothing", "threshold", "recheck"}, context={"public": True}
        ),
        cost={
            **detection.cost,
            "seconds": round(time.perf_counter() - started, 2),
            **({"induction": rulebook.provenance.cost} if induced else {}),
        },
    )
    if task.published:
        metrics["published"] = task.published
    rulebook.save(output / "rulebook.yaml")
    _write_predictions(output / "predictions.jsonl", held_out, detection)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output / "task.json").write_text(task.public_json())
    return metrics


def _induce(task: TaskConfig, normal_frames, embedder, backend_for, on_message, on_progress) -> RuleBook:
    """Rules induced from the reference videos' normal frames by the re-check model."""
    from axr.reasoning.induction import InductionConfig, induce

    config = InductionConfig(**task.pipeline.induction.model_dump())
    backend = backend_for(task.pipeline.recheck)
    name = f"{task.task}-induced"
    return induce(backend, normal_frames, config, embedder, name, on_message, on_progress)


def _recheck_quality(labels: dict[str, list[int]], detection, ceiling: dict) -> dict:
    """The re-check against the labels: the share of its answers that give the frame's label, and the pooled
    AUC if every re-checked frame had been answered right (what this policy can add at best)."""
    answered = [(key, v.verdict) for key, v in detection.rechecks.items() if v.verdict != "unparsed"]
    right = sum((verdict == "anomalous") == bool(labels[video][i]) for (video, i), verdict in answered)
    ceiling_auc = frame_metrics(labels, ceiling, detection.threshold)["frame_auc_pooled"]
    return {
        "agreement_with_labels": round(right / len(answered), 4) if answered else None,
        "answered": len(answered),
        "ceiling_frame_auc_pooled": ceiling_auc,
    }


def _write_predictions(path: Path, videos, detection) -> None:
    with path.open("w", encoding="utf-8") as sink:
        for video in videos:
            for i, result in enumerate(detection.results[video.video]):
                verdict = detection.rechecks.get((video.video, i))
                record = {
                    "sample_id": video.frame_id(i),
                    "video": video.video,
                    "frame": i,
                    "gt_label": video.labels[i],
                    "status": "ok",
                    "pred_score": round(float(detection.scores[video.video][i]), 4),
                    "pred_label": detection.label(video.video, i),
                    "verdict": verdict.model_dump(mode="json", exclude_none=True) if verdict else None,
                    "trigger_score": round(result.score, 4),
                    "keyword_hits": result.keyword_hits,
                    "novelty": round(result.novelty, 4),
                }
                sink.write(json.dumps(record) + "\n")
