"""The caption benchmark: a caption set -> trigger stage -> optional model re-check -> smoothing -> metrics.

Outputs in the run folder: `predictions.jsonl` (one line per evaluated frame: trigger score, keyword hits,
novelty, smoothed score, predicted label, and the re-check verdict where there was one), `metrics.json`
(frame-level metrics, the split, the settings, cost), and `rulebook.yaml` (the book that was used).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from axr.eval.datasets.captions import CaptionVideo, load_caption_set, split_videos
from axr.eval.journal import Journal
from axr.eval.metrics import frame_metrics
from axr.eval.tasks import task_file_path
from axr.reasoning.deduction import merge_recheck, recheck, select_for_recheck
from axr.reasoning.prompting import template_version
from axr.reasoning.rulebook_import import load_rules
from axr.reasoning.schema import RuleBook, SchemaError, Verdict
from axr.reasoning.smoothing import smooth
from axr.reasoning.triggers import TriggerStage

CHUNK = 64  # frames per re-check call: each chunk is journaled as soon as it returns
MIN_SCENE_REFERENCES = 50  # fewer normal frames than this cannot tell a scene's normal vocabulary


def run_caption_task(
    task: dict[str, Any], output: Path, backend_factory=None, progress=print, tick=None
) -> dict[str, Any]:
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
    normal_frames = [
        (f"{v.video}/{i:06d}", c)
        for v in reference
        for i, (c, y) in enumerate(zip(v.captions, v.labels, strict=True))
        if y == 0
    ]
    references = [c for _, c in normal_frames]
    embedder = None
    if pipeline["trigger"].get("novelty", True) or induced:
        from axr.reasoning.embedding import Embedder

        embedder = Embedder()
    if induced:
        rulebook = _induce(pipeline, normal_frames, embedder, backend_factory, progress, task["task"])
    else:
        rulebook = load_rules(rules_path)
    n_anomaly = len(rulebook.rules("anomaly"))
    progress(
        f"{len(videos)} videos: {len(reference)} reference ({len(references)} normal frames), "
        f"{len(held_out)} evaluated; rule book {rulebook.name} ({n_anomaly} anomaly rules)"
    )

    trigger_cfg = pipeline["trigger"]
    novelty = embedder if trigger_cfg.get("novelty", True) else None
    stages = _scene_stages(rulebook, reference, held_out, task["split"].get("scene_pattern"), novelty, trigger_cfg)
    if trigger_cfg.get("synonyms") and embedder is not None:
        for stage in {id(s): s for s in stages.values()}.values():  # scenes without references share "all"
            stage.embedder = embedder
            added = stage.add_synonyms([c for v in held_out for c in v.captions], trigger_cfg["synonyms"])
        progress(f"synonyms added from the observations: {added}")
    smoothing = pipeline["smoothing"]

    def smoothed(raw) -> np.ndarray:
        return smooth(raw, smoothing["method"], smoothing["window"], smoothing["alpha"])

    pattern = task["split"].get("scene_pattern")
    details = {v.video: stages[scene_of(v.video, pattern)].score(v.captions) for v in [*reference, *held_out]}
    threshold = _reference_threshold(reference, details, smoothed, pipeline["threshold"]["reference_quantile"])
    scores = {v.video: smoothed(np.array([r.score for r in details[v.video]])) for v in held_out}
    verdicts, cost = _recheck_stage(
        pipeline["recheck"], rulebook, held_out, scores, threshold, backend_factory, progress, output, tick
    )
    metrics = frame_metrics({v.video: v.labels for v in held_out}, scores, threshold)
    metrics.update(
        task=task["task"],
        rules="induced" if induced else str(rules_path),
        split={
            "reference_videos": [v.video for v in reference],
            "evaluated_videos": len(held_out),
            "reference_normal_frames": len(references),
        },
        keywords={k: sorted(w) for k, w in stages["all"].keywords.items()},
        dropped_keywords=sorted(stages["all"].dropped),
        scenes=sorted(k for k in stages if k != "all"),
        settings={
            "trigger": trigger_cfg,
            "smoothing": smoothing,
            "threshold": pipeline["threshold"],
            "recheck": {k: v for k, v in pipeline["recheck"].items() if k != "api_key"},
        },
        cost={
            **cost,
            "seconds": round(time.perf_counter() - started, 2),
            **({"induction": rulebook.provenance.cost} if induced else {}),
        },
    )
    if task.get("published"):
        metrics["published"] = task["published"]
    output.mkdir(parents=True, exist_ok=True)
    rulebook.save(output / "rulebook.yaml")
    _write_predictions(output / "predictions.jsonl", held_out, details, scores, threshold, verdicts)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _induce(pipeline, normal_frames, embedder, backend_factory, progress, name) -> RuleBook:
    """Rules induced from the reference videos' normal frames by the re-check model."""
    from axr.reasoning.induction import InductionConfig, induce

    settings = pipeline.get("induction", {})
    config = InductionConfig(**{k: v for k, v in settings.items() if k in InductionConfig.__dataclass_fields__})
    backend = backend_factory(pipeline["recheck"])
    return induce(backend, normal_frames, config, embedder, name=f"{name}-induced", progress=progress)


def scene_of(video: str, pattern: str | None) -> str:
    """The scene (camera) a video belongs to, by the task's regex on its name; one scene without a pattern."""
    match = re.search(pattern, video) if pattern else None
    return match.group(1) if match else "all"


def _scene_stages(rulebook, reference, held_out, pattern, embedder, cfg) -> dict[str, TriggerStage]:
    """One trigger stage per scene, its keywords filtered and its novelty measured against that scene's own
    normal references (normal differs by camera); scenes without enough references use all of them."""
    by_scene: dict[str, list[str]] = {}
    for video in reference:
        normal = [c for c, y in zip(video.captions, video.labels, strict=True) if y == 0]
        by_scene.setdefault(scene_of(video.video, pattern), []).extend(normal)
    everything = [c for captions in by_scene.values() for c in captions]
    stages = {"all": TriggerStage(rulebook, everything, embedder, cfg["max_normal_share"], cfg["keyword_weight"])}
    for scene in {scene_of(v.video, pattern) for v in [*reference, *held_out]} - {"all"}:
        own = by_scene.get(scene, [])
        stages[scene] = (
            TriggerStage(rulebook, own, embedder, cfg["max_normal_share"], cfg["keyword_weight"])
            if len(own) >= MIN_SCENE_REFERENCES
            else stages["all"]
        )
    return stages


def _reference_threshold(reference: list[CaptionVideo], details, smoothed, quantile: float) -> float:
    normal = []
    for video in reference:
        scores = smoothed(np.array([r.score for r in details[video.video]]))
        normal.extend(s for s, y in zip(scores, video.labels, strict=True) if y == 0)
    return float(np.quantile(normal, quantile)) if normal else 0.5


def _recheck_stage(config, rulebook, videos, scores, threshold, backend_factory, progress, output, tick=None):
    """Re-check the selected frames with the model and merge its labels into the smoothed `scores` (in place).

    Verdicts go to a journal in the run folder as each chunk returns; a re-run with the same rule book and
    model reuses them, so an interrupted re-check resumes instead of starting over.
    """
    cost = {"model_calls": 0, "tokens_in": 0, "tokens_out": 0, "frames_rechecked": 0, "unparsed": 0, "resumed": 0}
    if config["policy"] == "none":
        return {}, cost
    policy, band = config["policy"], config["band"]
    chosen = [(v, int(i)) for v in videos for i in select_for_recheck(policy, scores[v.video], threshold, band)]
    total = sum(len(v.captions) for v in videos)
    progress(f"re-checking {len(chosen)} of {total} frames ({len(chosen) / total:.1%}) with the model")
    fingerprint = hashlib.sha256(
        json.dumps(
            [
                rulebook.model_dump(mode="json", exclude={"provenance"}),
                config["backend"],
                config["model"],
                template_version("deduce_system"),
                template_version("deduce_user"),
            ]
        ).encode()
    ).hexdigest()[:12]
    journal = Journal(output / f"recheck-{fingerprint}.jsonl")
    todo = [(v, i) for v, i in chosen if f"{v.video}/{i:06d}" not in journal]
    cost["resumed"] = len(chosen) - len(todo)
    if tick:
        tick(len(chosen) - len(todo), len(chosen))
    if todo:
        backend = backend_factory(config)
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            results = recheck(backend, rulebook, [(f"{v.video}/{i:06d}", v.captions[i]) for v, i in chunk])
            journal.append([r.model_dump(mode="json", exclude_none=True) for r in results])
            for verdict in results:
                cost["tokens_in"] += verdict.meta.get("tokens_in", 0)
                cost["tokens_out"] += verdict.meta.get("tokens_out", 0)
                cost["model_calls"] += 1 + bool(verdict.meta.get("repaired"))
            if tick:
                tick(cost["resumed"] + start + len(chunk), len(chosen))
            else:
                progress(f"re-checked {min(start + CHUNK, len(todo))} of {len(todo)}")
    verdicts = {(v.video, i): Verdict.model_validate(journal.records[f"{v.video}/{i:06d}"]) for v, i in chosen}
    _merge_pooled(scores, verdicts, threshold, band, config.get("min_confidence", 0.5))
    cost["unparsed"] = sum(v.verdict == "unparsed" for v in verdicts.values())
    cost.update(frames_rechecked=len(chosen), share_rechecked=len(chosen) / total)
    return verdicts, cost


def _merge_pooled(scores: dict[str, np.ndarray], verdicts: dict, threshold, band, min_confidence) -> None:
    """`merge_recheck` over all videos at once: the threshold and the metrics are pooled, so is the merge."""
    keys = list(verdicts)
    pooled = np.array([scores[video][i] for video, i in keys])
    merged = merge_recheck(pooled, np.arange(len(keys)), list(verdicts.values()), threshold, band, min_confidence)
    for (video, i), score in zip(keys, merged, strict=True):
        scores[video][i] = score


def _write_predictions(path: Path, videos, details, scores, threshold, verdicts) -> None:
    with path.open("w", encoding="utf-8") as sink:
        for video in videos:
            for i, (result, score) in enumerate(zip(details[video.video], scores[video.video], strict=True)):
                record = {
                    "sample_id": f"{video.video}/{i:06d}",
                    "video": video.video,
                    "frame": i,
                    "gt_label": video.labels[i],
                    "trigger_score": round(result.score, 4),
                    "keyword_hits": result.keyword_hits,
                    "novelty": round(result.novelty, 4),
                    "pred_score": round(float(score), 4),
                    "pred_label": int(score > threshold),
                }
                if (video.video, i) in verdicts:
                    record["recheck"] = verdicts[(video.video, i)].model_dump(mode="json", exclude_none=True)
                sink.write(json.dumps(record) + "\n")
