"""captions: a caption set -> trigger stage -> optional model re-check -> smoothing -> frame-level metrics,
all by the one caption detector (`axr.reasoning.caption_detector`, which `axr detect` runs too).

On the runner's contract: `setup` fits the detector on the reference videos (inducing the rule book first
with `rules: induce`); the samples are the held-out videos, so `--limit`, `--shard`, resume and the Ray
engine choose whole videos; `predict` scores a video's frames (no model); `finalize` re-checks the frames
the policy chooses, pooled over every chosen video, and merges the answers (re-run from each frame's
trigger score, so a resumed or widened run merges afresh), then finds the detected events (runs of flagged
frames) and, with `events.explain`, has the model explain each. Outputs beside the runner's: `rulebook.yaml`
(the book used), `events.jsonl`, and the model's journals `recheck-<fingerprint>.jsonl` and
`events-<fingerprint>-v<N>.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from axr.eval.datasets.captions import task_rulebook, task_videos
from axr.eval.metrics import frame_metrics
from axr.eval.pipelines.base import Pipeline
from axr.eval.records import PredictionRecord, TriggerDetail
from axr.eval.tasks import task_file_path
from axr.reasoning.caption_detector import CaptionDetector, CaptionVideo, Detection
from axr.reasoning.schema import Cost, RuleBook, Sample, SchemaError

ADAPTER = "anomalyruler_captions"
METRICS = frozenset(
    {
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
)


class CaptionPipeline(Pipeline):
    METRICS = METRICS
    model_per_sample = False
    text_only = True  # captions are text: an openai server is sent no image parts

    def __init__(self, task):
        super().__init__(task)
        self.detector: CaptionDetector | None = None
        self.reference: list[CaptionVideo] = []
        self.held_out: dict[str, CaptionVideo] = {}
        self.skipped: dict[str, str] = {}  # video -> why it could not be read
        self.recheck_cost: dict = {}
        self.quality: dict | None = None
        self.events_cost: dict | None = None  # set by finalize

    @property
    def endpoint(self):
        return self.task.pipeline.recheck

    def validate(self) -> list[str]:
        if self.task.dataset.adapter != ADAPTER:
            return [f"dataset.adapter {self.task.dataset.adapter!r}: caption tasks read the {ADAPTER} layout"]
        return []

    @property
    def induced(self) -> bool:
        return self.task.pipeline.rules == "induce"

    def setup(self, backend, on_message, on_phase) -> None:
        pipeline = self.task.pipeline
        if pipeline.rules is None:
            raise SchemaError("task: pipeline.rules is required (or --rules): a rule book file, or 'induce'")
        self.reference, held_out, self.skipped = task_videos(self.task)
        self.held_out = {v.video: v for v in held_out}
        for problem in self.skipped.values():
            on_message(f"skipped a video: {problem}")
        embedder = None
        if pipeline.trigger.novelty or self.induced:
            from axr.reasoning.embedding import Embedder

            embedder = Embedder()
        rulebook = self._induce(embedder, backend, on_message, on_phase) if self.induced else task_rulebook(self.task)
        n_references = sum(len(v.normal_captions()) for v in self.reference)
        on_message(
            f"{len(self.reference) + len(held_out)} videos: {len(self.reference)} reference ({n_references} normal "
            f"frames), {len(held_out)} evaluated; rule book {rulebook.name} "
            f"({len(rulebook.rules('anomaly'))} anomaly rules)"
        )
        self.detector = CaptionDetector(
            rulebook, pipeline, self.task.split.scene_pattern, embedder, self.task.dataset.line_seconds
        )
        scorer = self._scorer(backend, held_out, on_message, on_phase)
        self.detector.fit(self.reference, held_out, scorer)
        if pipeline.trigger.synonyms:
            on_message(f"synonyms added from the observations: {self.detector.synonyms}")

    def _scorer(self, backend, held_out, on_message, on_phase):
        """With `scoring.policy: all`, the model that scores each distinct caption once (P(yes) of its first
        answer token), its scores kept in $AXR_CACHE/caption-scores.jsonl across runs; every caption of the run
        is scored here, and the detector then reads the cache."""
        if self.task.pipeline.scoring.policy != "all":
            return None
        return self.detector.prepared_scorer(backend(), self.reference, held_out, on_message, on_phase("scoring"))

    def _induce(self, embedder, backend, on_message, on_phase) -> RuleBook:
        """Rules induced from the reference videos' normal frames by the re-check model."""
        from axr.reasoning.induction import induce

        normal = [(v.frame_id(i), c) for v in self.reference for i, c in enumerate(v.captions) if v.labels[i] == 0]
        name = f"{self.task.task}-induced"
        return induce(
            backend(), normal, self.task.pipeline.induction, embedder, name, on_message, on_phase("induction")
        )

    def samples(self) -> list[Sample]:
        """The held-out videos, and each video that could not be read (it becomes its error record, retried by
        --retry-errors once its files are fixed)."""
        readable = [Sample(sample_id=v.video, caption="\n".join(v.captions)) for v in self.held_out.values()]
        return readable + [Sample(sample_id=name, caption=problem) for name, problem in self.skipped.items()]

    def predict(self, chunk: list[Sample], backend) -> list[PredictionRecord]:
        """Each video's frames, scored by the trigger stage and smoothed along the video (no model); an
        unreadable video is one error record."""
        videos = [self.held_out[s.sample_id] for s in chunk if s.sample_id in self.held_out]
        unreadable = [
            PredictionRecord(
                sample_id=s.sample_id, video=s.sample_id, status="error", error=s.caption, error_kind="media"
            )
            for s in chunk
            if s.sample_id not in self.held_out
        ]
        detection = self.detector.score(videos)
        scorer = self.detector.scorer
        model = {v.video: self.detector.model_scores(v) for v in videos} if scorer else {}
        return unreadable + [
            PredictionRecord(
                sample_id=video.frame_id(i),
                video=video.video,
                frame=i,
                gt_label=video.labels[i],
                pred_score=float(detection.scores[video.video][i]),  # full precision: metrics rank by it
                pred_label=detection.label(video.video, i),
                trigger=TriggerDetail(
                    score=round(result.score, 4),
                    keyword_hits=result.keyword_hits,
                    novelty=round(result.novelty, 4),
                    smoothed=float(detection.scores[video.video][i]),
                    model_score=_rounded(model[video.video][i]) if scorer else None,
                ),
            )
            for video in videos
            for i, result in enumerate(detection.results[video.video])
        ]

    def finalize(self, records, output: Path, backend, on_message, on_phase) -> list[PredictionRecord]:
        """The re-check of the frames the policy chooses, pooled over the chosen videos, merged into scores
        recomputed from each frame's trigger score (so a rerun merges afresh, never twice)."""
        output.mkdir(parents=True, exist_ok=True)
        self.detector.rulebook.save(output / "rulebook.yaml")
        frames: dict[str, list[PredictionRecord]] = {}
        for record in records:
            if record.ok:
                frames.setdefault(record.video, []).append(record)
        videos = [self.held_out[name] for name in frames]
        detection = Detection(
            self.detector.threshold,
            {},
            {
                name: np.array([r.trigger.smoothed for r in sorted(rows, key=lambda r: r.frame)])
                for name, rows in frames.items()
            },
        )
        recheck = self.task.pipeline.recheck
        ceiling = self.detector.ceiling_scores(videos, detection) if recheck.policy != "none" else None
        self.detector.recheck(videos, detection, backend, output, recheck.model, on_phase("re-check"), on_message)
        self.recheck_cost = detection.cost
        if ceiling is not None:
            self.quality = _recheck_quality(videos, detection, ceiling)
        self._events(videos, detection, output, backend, on_phase, on_message)
        out = [r for r in records if not r.ok]
        for record in (r for r in records if r.ok):
            verdict = detection.rechecks.get((record.video, record.frame))
            update = {
                "pred_score": float(detection.scores[record.video][record.frame]),
                "pred_label": detection.label(record.video, record.frame),
                "verdict": verdict.model_dump(mode="json", exclude_none=True) if verdict else None,
                "cost": verdict.cost() if verdict else Cost(),
            }
            # a record finalize leaves as it is stays the same object: the runner rewrites only what changed
            unchanged = all(getattr(record, key) == value for key, value in update.items())
            out.append(record if unchanged else record.model_copy(update=update))
        return out

    def _scoring_metrics(self, scorer, labels: dict[str, list[int]]) -> dict:
        """The scoring stage: pooled AUC of each part alone and fused on these frames, and its cost (distinct
        captions of the evaluated videos, per frame and per distinct caption)."""
        videos = [self.held_out[name] for name in labels]
        parts = self.detector.part_scores(videos)
        threshold = self.detector.threshold
        frames = sum(len(v.captions) for v in videos)
        cost = scorer.cost([c for v in videos for c in v.captions])
        return {
            "model": scorer.backend.model,
            "weight": self.task.pipeline.scoring.weight,
            "frame_auc_pooled": {
                name: frame_metrics(labels, s, threshold)["frame_auc_pooled"] for name, s in parts.items()
            },
            "asked_this_run": scorer.asked,  # distinct captions; the others came from the cache
            "unanswered": scorer.unanswered,  # no yes/no answer: asked again by the next run
            **cost,
            "frames": frames,
            "distinct_share_of_frames": round(cost["distinct_scored"] / frames, 4) if frames else None,
            "tokens_in_per_frame": round(cost["tokens_in"] / frames, 2) if frames else None,
            "tokens_out_per_frame": round(cost["tokens_out"] / frames, 4) if frames else None,
        }

    def _events(self, videos, detection: Detection, output: Path, backend, on_phase, on_message) -> None:
        """The detected events, each explained by the re-check model with `events.explain`, in events.jsonl."""
        import json

        events = self.detector.find_events(detection)
        self.events_cost = {"events": len(events)}
        if self.task.pipeline.events.explain and events:
            model = self.task.pipeline.recheck.model
            on_message(f"explaining {len(events)} detected events with {model} (one answer each)")
            self.events_cost = self.detector.explain_events(
                events, videos, backend, output, model, on_phase("explaining events")
            )
        lines = "".join(json.dumps(e.record(), ensure_ascii=False) + "\n" for e in events)
        (output / "events.jsonl").write_text(lines, encoding="utf-8")

    def metrics(self, records: list[PredictionRecord]) -> dict:
        labels, scores = {}, {}
        for record in sorted(records, key=lambda r: (r.video, r.frame)):
            labels.setdefault(record.video, []).append(record.gt_label)
            scores.setdefault(record.video, []).append(record.pred_score)
        metrics = frame_metrics(labels, {v: np.array(s) for v, s in scores.items()}, self.detector.threshold)
        if self.quality is not None:
            metrics["recheck_quality"] = self.quality
        if self.events_cost is not None:
            metrics["events"] = self.events_cost
        if (scorer := self.detector.scorer) is not None:
            metrics["scoring"] = self._scoring_metrics(scorer, labels)
        stage = self.detector.stages["all"]
        pipeline = self.task.pipeline
        cost = {k: v for k, v in self.recheck_cost.items() if k not in ("model_calls", "tokens_in", "tokens_out")}
        if self.induced:
            cost["induction"] = self.detector.rulebook.provenance.cost.model_dump()
        metrics.update(
            rules="induced" if self.induced else str(task_file_path(pipeline.rules)),
            split={
                "reference_videos": [v.video for v in self.reference],
                "evaluated_videos": len(labels),
                "reference_normal_frames": sum(len(v.normal_captions()) for v in self.reference),
                "skipped_videos": list(self.skipped.values()),
            },
            keywords={k: sorted(w) for k, w in stage.keywords.items()},
            keyword_weights={w: round(x, 3) for w, x in sorted(stage.weights.items(), key=lambda kv: -kv[1])},
            dropped_keywords=sorted(stage.dropped),
            scenes=sorted(k for k in self.detector.stages if k != "all"),
            settings=pipeline.model_dump(
                include={"trigger", "smoothing", "threshold", "recheck", "scoring", "events"}, context={"public": True}
            ),
            cost=cost,
        )
        if self.task.published:
            metrics["published"] = self.task.published
        return metrics


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def _recheck_quality(videos: list[CaptionVideo], detection: Detection, ceiling: dict) -> dict:
    """The re-check against the labels: the share of its answers that give the frame's label, and the pooled
    AUC if every re-checked frame had been answered right (what this policy can add at best)."""
    labels = {v.video: v.labels for v in videos}
    answered = [(key, v.verdict) for key, v in detection.rechecks.items() if v.verdict != "unparsed"]
    right = sum((verdict == "anomalous") == bool(labels[video][i]) for (video, i), verdict in answered)
    ceiling_auc = frame_metrics(labels, ceiling, detection.threshold)["frame_auc_pooled"]
    return {
        "agreement_with_labels": round(right / len(answered), 4) if answered else None,
        "answered": len(answered),
        "ceiling_frame_auc_pooled": ceiling_auc,
    }
