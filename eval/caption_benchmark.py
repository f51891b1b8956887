"""The caption benchmark: a caption set -> trigger stage -> optional model re-check -> smoothing -> metrics.

Outputs in the run folder: `predictions.jsonl` (one line per evaluated frame: trigger score, keyword hits,
novelty, smoothed score, predicted label, and the re-check verdict where there was one), `metrics.json`
(frame-level metrics, the split, the settings, cost), and `rulebook.yaml` (the book that was used).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from axr.eval.datasets.captions import load_caption_set, split_videos
from axr.eval.metrics import frame_metrics
from axr.eval.tasks import task_file_path
from axr.reasoning.caption_detector import CaptionDetector, DetectorSettings
from axr.reasoning.rulebook_import import load_rules
from axr.reasoning.schema import RuleBook, SchemaError


def run_caption_task(task: dict[str, Any], output: Path, backend_factory=None, progress=print, tick=None) -> dict:
    """Run one caption task (as loaded by `axr.eval.tasks.load_task`); returns and writes the metrics.

    `progress` takes status lines; `tick(done, total)` follows the model re-check frame by frame (a bar)."""
    started = time.perf_counter()
    pipeline = task["pipeline"]
    induced = pipeline.get("rules") == "induce"
    data_dir = task_file_path(task["dataset"].get("data_dir"))
    rules_path = None if induced else task_file_path(pipeline.get("rules"))
    if data_dir is None:
        raise SchemaError("task: dataset.data_dir is required (or --data-dir)")
    if rules_path is None and not induced:
        raise SchemaError("task: pipeline.rules is required (or --rules): a rule book file, or 'induce'")
    videos = load_caption_set(data_dir)
    reference, held_out = split_videos(videos, task["split"]["reference_every"])
    settings = DetectorSettings.from_task(pipeline, task["split"])
    embedder = None
    if settings.novelty or induced:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    if induced:
        normal_frames = [(v.frame_id(i), c) for v in reference for i, c in enumerate(v.captions) if v.labels[i] == 0]
        rulebook = _induce(pipeline, normal_frames, embedder, backend_factory, progress, task["task"])
    else:
        rulebook = load_rules(rules_path)
    n_references = sum(len(v.normal_captions()) for v in reference)
    progress(
        f"{len(videos)} videos: {len(reference)} reference ({n_references} normal frames), "
        f"{len(held_out)} evaluated; rule book {rulebook.name} ({len(rulebook.rules('anomaly'))} anomaly rules)"
    )
    detector = CaptionDetector(rulebook, settings, embedder).fit(reference, held_out)
    if settings.synonyms:
        progress(f"synonyms added from the observations: {detector.synonyms}")
    detection = detector.score(held_out)
    recheck_cfg = pipeline["recheck"]
    output.mkdir(parents=True, exist_ok=True)
    detector.recheck(
        held_out, detection, lambda: backend_factory(recheck_cfg), output, recheck_cfg["model"], tick, progress
    )
    metrics = frame_metrics({v.video: v.labels for v in held_out}, detection.scores, detection.threshold)
    stage = detector.stages["all"]
    metrics.update(
        task=task["task"],
        rules="induced" if induced else str(rules_path),
        split={
            "reference_videos": [v.video for v in reference],
            "evaluated_videos": len(held_out),
            "reference_normal_frames": n_references,
        },
        keywords={k: sorted(w) for k, w in stage.keywords.items()},
        dropped_keywords=sorted(stage.dropped),
        scenes=sorted(k for k in detector.stages if k != "all"),
        settings={
            "trigger": pipeline["trigger"],
            "smoothing": pipeline["smoothing"],
            "threshold": pipeline["threshold"],
            "recheck": {k: v for k, v in recheck_cfg.items() if k != "api_key"},
        },
        cost={
            **detection.cost,
            "seconds": round(time.perf_counter() - started, 2),
            **({"induction": rulebook.provenance.cost} if induced else {}),
        },
    )
    if task.get("published"):
        metrics["published"] = task["published"]
    rulebook.save(output / "rulebook.yaml")
    _write_predictions(output / "predictions.jsonl", held_out, detection)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _induce(pipeline, normal_frames, embedder, backend_factory, progress, name) -> RuleBook:
    """Rules induced from the reference videos' normal frames by the re-check model."""
    from axr.reasoning.induction import InductionConfig, induce

    settings = pipeline.get("induction", {})
    config = InductionConfig(**{k: v for k, v in settings.items() if k in InductionConfig.__dataclass_fields__})
    backend = backend_factory(pipeline["recheck"])
    return induce(backend, normal_frames, config, embedder, name=f"{name}-induced", progress=progress)


def _write_predictions(path: Path, videos, detection) -> None:
    with path.open("w", encoding="utf-8") as sink:
        for video in videos:
            for i, result in enumerate(detection.results[video.video]):
                record = {
                    "sample_id": video.frame_id(i),
                    "video": video.video,
                    "frame": i,
                    "gt_label": video.labels[i],
                    "trigger_score": round(result.score, 4),
                    "keyword_hits": result.keyword_hits,
                    "novelty": round(result.novelty, 4),
                    "pred_score": round(float(detection.scores[video.video][i]), 4),
                    "pred_label": detection.label(video.video, i),
                }
                if (video.video, i) in detection.rechecks:
                    record["recheck"] = detection.rechecks[(video.video, i)].model_dump(mode="json", exclude_none=True)
                sink.write(json.dumps(record) + "\n")
