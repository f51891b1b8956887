"""One caption detector for `axr detect` and `axr eval run` on captions: the same input gets the same answer.

Fit on the normal references (per scene when the videos' names say which camera they come from), then for
each video: trigger scores (rule keywords + MiniLM novelty), smoothing along the video, the threshold at a
quantile of the references' smoothed scores, an optional model re-check of the frames a policy chooses
(journaled, so an interrupted re-check resumes), the re-check merged into the smoothed scores, and a Verdict
per frame with the rules its keywords broke.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field

import numpy as np

from axr.reasoning.deduction import merge_recheck, recheck, select_for_recheck, trigger_verdict
from axr.reasoning.events import Event, explain_events, find_events
from axr.reasoning.journal import Journal
from axr.reasoning.prompting import template_version
from axr.reasoning.schema import RuleBook, Verdict
from axr.reasoning.settings import DetectorSettings
from axr.reasoning.smoothing import smooth
from axr.reasoning.triggers import TriggerResult, TriggerStage

CHUNK = 64  # frames per re-check call (each answer is journaled as it arrives)
MIN_SCENE_REFERENCES = 50  # fewer normal frames than this cannot tell a scene's normal vocabulary


@dataclass
class CaptionVideo:
    """The captions of one video in frame order; labels when known (0 normal, 1 anomalous), else all 0."""

    video: str
    captions: list[str]
    labels: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # the frames' sample ids, when not `<video>/<frame:06d>`
    cut: set[int] = field(default_factory=set)  # frames whose caption was cut to MAX_CAPTION_CHARS when read

    def __post_init__(self):
        self.labels = self.labels or [0] * len(self.captions)

    def frame_id(self, i: int) -> str:
        return self.ids[i] if self.ids else f"{self.video}/{i:06d}"

    def normal_captions(self) -> list[str]:
        """The captions of its normal frames; a frame with no caption ("") is no reference."""
        return [c for c, y in zip(self.captions, self.labels, strict=True) if y == 0 and c]


def trigger_scores(video: CaptionVideo, results: list[TriggerResult]) -> np.ndarray:
    """The trigger's frame scores; NaN for a frame with no caption, which smoothing leaves out (it takes its
    neighbours' score; alone, 0)."""
    return np.array([r.score if caption else np.nan for r, caption in zip(results, video.captions, strict=True)])


def scene_of(video: str, pattern: str | None) -> str:
    """The scene (camera) a video belongs to, by the pattern's first group; one scene without a pattern."""
    match = re.search(pattern, video) if pattern else None
    return match.group(1) if match else "all"


@dataclass
class Detection:
    """What the detector found in a set of videos: per-frame trigger results, smoothed (and merged) scores,
    the threshold, and the model's re-check verdicts by (video, frame)."""

    threshold: float
    results: dict[str, list[TriggerResult]]
    scores: dict[str, np.ndarray]
    rechecks: dict[tuple[str, int], Verdict] = field(default_factory=dict)
    cost: dict = field(default_factory=dict)

    def label(self, video: str, i: int) -> int:
        return int(self.scores[video][i] > self.threshold)


class CaptionDetector:
    """`settings` is read as it is (a caption task's pipeline section is one); `scene_pattern`, a regex whose
    first group names a video's scene (camera), fits one trigger stage per scene; `line_seconds`, how long one
    caption line covers (None: a frame at 24 fps)."""

    def __init__(
        self,
        rulebook: RuleBook,
        settings: DetectorSettings | None = None,
        scene_pattern: str | None = None,
        embedder=None,
        line_seconds: float | None = None,
    ):
        self.rulebook, self.settings = rulebook, settings or DetectorSettings()
        self.line_seconds = line_seconds  # what one caption line covers; smoothing windows are in seconds
        self.scene_pattern = scene_pattern
        self.embedder = embedder if self.settings.trigger.novelty else None
        self.stages: dict[str, TriggerStage] = {}
        self.threshold: float | None = None
        self.synonyms: dict[str, str] = {}  # word of the observations -> the keyword it joined (all scenes)
        self.scorer = None  # set by fit with scoring.policy all

    @property
    def scale(self) -> float:
        """The largest frame score: a keyword hit plus full novelty, or the fusion's largest (`largest_fused`)."""
        if self.scorer is None:
            return self.settings.trigger.keyword_weight + 1
        from axr.reasoning.scoring import largest_fused

        s = self.settings.scoring
        return largest_fused(self._reference_trigger, self._reference_model, s.weight, s.fusion)

    def fit(
        self, references: list[CaptionVideo], observations: list[CaptionVideo] = (), scorer=None
    ) -> CaptionDetector:
        """Trigger stages from the references' normal frames (one per scene with enough of its own), and the
        threshold from their smoothed scores. `observations` only name the scenes to prepare (and, with
        `synonyms`, lend their words). `scorer` (a CaptionScorer, with `scoring.policy: all`) scores the
        references' captions now and each video's when it is scored, fused with the trigger."""
        s = self.settings
        self.scorer = scorer if s.scoring.policy == "all" else None
        by_scene: dict[str, list[str]] = {}
        for video in references:
            by_scene.setdefault(scene_of(video.video, self.scene_pattern), []).extend(video.normal_captions())
        everything = [c for captions in by_scene.values() for c in captions]
        self.stages = {"all": self._stage(everything)}
        for scene in {scene_of(v.video, self.scene_pattern) for v in [*references, *observations]} - {"all"}:
            own = by_scene.get(scene, [])
            self.stages[scene] = self._stage(own) if len(own) >= MIN_SCENE_REFERENCES else self.stages["all"]
        observed: dict[int, list[str]] = {}  # per stage (scenes without references share "all")
        for video in observations:
            observed.setdefault(id(self._stage_of(video)), []).extend(video.captions)
        for stage in {id(x): x for x in self.stages.values()}.values():
            stage.observe(observed.get(id(stage), []))
        if s.trigger.synonyms and self.embedder is not None:
            words = [c for v in observations for c in v.captions]
            for stage in {id(x): x for x in self.stages.values()}.values():  # scenes without references share "all"
                stage.embedder = self.embedder
                self.synonyms.update(stage.add_synonyms(words, s.trigger.synonyms))
        if self.scorer is not None:  # each signal's distribution on the normal references, for the fusion
            sample = self.model_reference_captions(references)
            model = self.scorer.score(sample)
            self._reference_model = np.array([model[c] for c in sample if c in model])
            trigger = {v.video: self._results(v) for v in references}
            normal = [(v, i) for v in references for i, y in enumerate(v.labels) if y == 0 and v.captions[i]]
            self._reference_trigger = np.array([trigger[v.video][i].score for v, i in normal])
        fixed = s.threshold.value
        self.threshold = fixed if fixed is not None else self._reference_threshold(references)
        return self

    def model_reference_captions(self, references: list[CaptionVideo]) -> list[str]:
        """The captions of at most `scoring.reference_frames` normal reference frames, spread evenly: the
        model's own normal distribution for the fusion (a repeated caption counts once per frame)."""
        normal = [c for v in references for c in v.normal_captions()]
        step = max(1, -(-len(normal) // self.settings.scoring.reference_frames))
        return normal[::step]

    def prepared_scorer(self, backend, references, observations, on_message=None, on_progress=None):
        """With `scoring.policy: all`, the CaptionScorer for `fit` (its journal in $AXR_CACHE), having scored
        every caption the run needs: the references' sample and every frame of `observations`, in batches
        across videos, with progress. None otherwise."""
        if self.settings.scoring.policy != "all":
            return None
        from axr.reasoning.resources import cache_dir
        from axr.reasoning.scoring import CaptionScorer

        top = self.settings.scoring.top_logprobs
        scorer = CaptionScorer(backend, self.rulebook, cache_dir() / "caption-scores.jsonl", top_logprobs=top)
        captions = self.model_reference_captions(references) + [c for v in observations for c in v.captions]
        if on_message:
            on_message(f"scoring {len(set(captions))} distinct captions with {backend.model} (one token each)")
        scorer.score(captions, on_progress=on_progress)
        return scorer

    def _stage(self, normal: list[str]) -> TriggerStage:
        return TriggerStage(self.rulebook, normal, self.embedder, self.settings.trigger)

    def _reference_threshold(self, references: list[CaptionVideo]) -> float:
        normal = []
        for video in references:
            # with a scorer, the frames outside the model's reference sample keep the trigger's part alone
            # (the threshold asks the model nothing more)
            scores = self._smoothed(self._frame_scores(video, self._results(video), ask=False))
            normal.extend(x for x, y in zip(scores, video.labels, strict=True) if y == 0)
        # without references a keyword hit alone is enough
        quantile = self.settings.threshold.reference_quantile
        return float(np.quantile(normal, quantile)) if normal else 0.5 * self.scale

    def _stage_of(self, video: CaptionVideo) -> TriggerStage:
        return self.stages[scene_of(video.video, self.scene_pattern)]

    def _results(self, video: CaptionVideo) -> list[TriggerResult]:
        return self._stage_of(video).score(video.captions)

    def model_scores(self, video: CaptionVideo, ask: bool = True) -> np.ndarray:
        """The model's P(yes) for each frame's caption (NaN where it has none), asking the scorer for the
        missing ones unless `ask` is False; needs a scorer."""
        model = (self.scorer.score if ask else self.scorer.known)(video.captions)
        return np.array([model.get(c, np.nan) for c in video.captions])

    def _frame_scores(
        self,
        video: CaptionVideo,
        results: list[TriggerResult],
        weight: float | None = None,
        ask: bool = True,
        fusion: str | None = None,
    ) -> np.ndarray:
        """The trigger's scores, or with a scorer the fused ones at `weight` by `fusion` (default: the
        setting's; a frame whose caption got no model score keeps the trigger's part alone)."""
        trigger = trigger_scores(video, results)
        if self.scorer is None:
            return trigger
        from axr.reasoning.scoring import fuse

        p_yes = self.model_scores(video, ask)
        s = self.settings.scoring
        weight, fusion = s.weight if weight is None else weight, fusion or s.fusion
        fused = fuse(trigger, p_yes, self._reference_trigger, self._reference_model, weight, fusion)
        return np.where(np.isnan(trigger), np.nan, fused)

    def part_scores(self, videos: list[CaptionVideo], weights=()) -> dict[str, dict[str, np.ndarray]]:
        """With a scorer, each video's smoothed scores by each part: the trigger alone (as without scoring),
        the model alone (its rank, whatever the fusion, so that it says what the model is worth; the trigger's
        rank where a caption has no model score), fused at the setting's weight, and fused at each of
        `weights` (as `fused_<weight>`)."""
        results = {v.video: self._results(v) for v in videos}

        def smoothed(weight=None, fusion=None) -> dict[str, np.ndarray]:
            return {
                v.video: self._smoothed(self._frame_scores(v, results[v.video], weight, True, fusion)) for v in videos
            }

        return {
            "trigger": {v.video: self._smoothed(trigger_scores(v, results[v.video])) for v in videos},
            "model": smoothed(1.0, "rank"),
            "fused": smoothed(),
            **{f"fused_{weight:g}": smoothed(weight) for weight in weights},
        }

    def _smoothed(self, scores: np.ndarray) -> np.ndarray:
        s = self.settings.smoothing
        return smooth(scores, s.method, s.window_lines(self.line_seconds), s.alpha)

    def score(self, videos: list[CaptionVideo]) -> Detection:
        """Trigger results and smoothed scores of every frame (no model)."""
        if self.threshold is None:
            raise ValueError("fit the detector on normal references first")
        results = {v.video: self._results(v) for v in videos}
        scores = {v.video: self._smoothed(self._frame_scores(v, results[v.video])) for v in videos}
        return Detection(self.threshold, results, scores)

    def chosen_for_recheck(self, videos: list[CaptionVideo], detection: Detection) -> list[tuple[CaptionVideo, int]]:
        """The (video, frame index) pairs the re-check policy chooses."""
        s = self.settings.recheck
        return [
            (v, int(i))
            for v in videos
            for i in select_for_recheck(s.policy, detection.scores[v.video], detection.threshold, s.band)
            if v.captions[i]  # a frame with no caption gives the model nothing to check
        ]

    def recheck(
        self,
        videos,
        detection: Detection,
        backend_factory,
        journal_folder,
        model_name: str,
        on_progress=None,
        on_message=None,
    ) -> Detection:
        """Re-check the frames the policy chooses with the model (journaled in `journal_folder`, resumed from
        it; the backend is made only when something is left to ask) and merge its labels into the detection's
        scores, pooled over all videos (the threshold is pooled too)."""
        counters = (
            "model_calls",
            "tokens_in",
            "tokens_out",
            "frames_rechecked",
            "unparsed",
            "resumed",
            "request_errors",
        )
        cost = detection.cost = dict.fromkeys(counters, 0)
        if self.settings.recheck.policy == "none":
            return detection
        chosen = self.chosen_for_recheck(videos, detection)
        total = sum(len(v.captions) for v in videos)
        cost["share_rechecked"] = len(chosen) / total
        if on_message:
            on_message(f"re-checking {len(chosen)} of {total} frames ({len(chosen) / total:.1%}) with the model")
        if not chosen:
            return detection
        journal = Journal(journal_folder / f"recheck-{self._fingerprint(model_name)}.jsonl")
        todo = [(v, i) for v, i in chosen if v.frame_id(i) not in journal]
        cost["resumed"] = len(chosen) - len(todo)
        if on_progress:
            on_progress(cost["resumed"], len(chosen))
        backend = backend_factory() if todo else None
        done = cost["resumed"]

        def arrived(verdict: Verdict) -> None:
            nonlocal done
            # journaled as each answer arrives, so stopping a slow model loses only the answers in flight;
            # a request that got no answer is not journaled: it is no verdict, and the next run asks again
            if "request_error" not in verdict.meta:
                journal.append([verdict.model_dump(mode="json", exclude_none=True)])
            for key, value in verdict.cost():
                cost[key] += value
            done += 1
            if on_progress:
                on_progress(done, len(chosen))

        started = time.perf_counter()
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            recheck(backend, self.rulebook, [(v.frame_id(i), v.captions[i]) for v, i in chunk], on_verdict=arrived)
        cost["recheck_seconds"] = round(time.perf_counter() - started, 2)  # this run's requests (not resumed ones)
        answered = [(v, i) for v, i in chosen if v.frame_id(i) in journal]
        detection.rechecks = {
            (v.video, i): Verdict.model_validate(journal.records[v.frame_id(i)]) for v, i in answered
        }
        cost["request_errors"] = len(chosen) - len(answered)  # frames keep their trigger score; rerun to retry
        self._merge(detection.scores, detection.threshold, detection.rechecks)
        cost["unparsed"] = sum(v.verdict == "unparsed" for v in detection.rechecks.values())
        cost["frames_rechecked"] = len(chosen)
        return detection

    def find_events(self, detection: Detection) -> list[Event]:
        """The detection's events: runs of frames above the threshold per video (see `axr.reasoning.events`)."""
        gap = self.settings.events.merge_gap_seconds
        return find_events(detection.scores, detection.threshold, self.line_seconds, gap)

    def explain_events(
        self, events: list[Event], videos, backend_factory, journal_folder, model_name: str, on_progress=None
    ) -> dict:
        """One generated Verdict per event (set on each), journaled in `journal_folder`; returns the cost."""
        name = f"events-{self._fingerprint(model_name)}-v{template_version('event')}.jsonl"
        captions = {v.video: v.captions for v in videos}
        most = self.settings.events.max_captions
        return explain_events(
            backend_factory, self.rulebook, events, captions, journal_folder / name, most, on_progress
        )

    def _fingerprint(self, model_name: str) -> str:
        """The journal's name: another rule book, model or prompt version starts a new journal."""
        parts = [
            self.rulebook.model_dump(mode="json", exclude={"provenance"}),
            model_name,
            template_version("deduce_system"),
            template_version("deduce_user"),
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]

    def _merge(self, scores: dict[str, np.ndarray], threshold: float, rechecks: dict) -> None:
        """Merge re-check verdicts ((video, frame) -> Verdict) into `scores`, in place, pooled over videos."""
        keys = list(rechecks)
        pooled = np.array([scores[video][i] for video, i in keys])
        s = self.settings.recheck
        merged = merge_recheck(
            pooled, np.arange(len(keys)), list(rechecks.values()), threshold, s.band, s.min_confidence
        )
        for (video, i), value in zip(keys, merged, strict=True):
            scores[video][i] = value

    def merged_copy(self, detection: Detection, answers: dict) -> dict[str, np.ndarray]:
        """The detection's scores with `answers` ((video, frame) -> Verdict) merged, leaving the detection as it is."""
        scores = {video: values.copy() for video, values in detection.scores.items()}
        self._merge(scores, detection.threshold, answers)
        return scores

    def ceiling_scores(self, videos: list[CaptionVideo], detection: Detection) -> dict[str, np.ndarray]:
        """The scores a perfect re-checker would leave: every frame the policy chooses answered by its label.
        Evaluation only (it reads the labels): how much this policy's re-check can add at best. Call it before
        `recheck`, which merges into the detection's scores."""
        answers = {
            (v.video, i): Verdict(verdict="anomalous" if v.labels[i] else "normal", confidence=1.0)
            for v, i in self.chosen_for_recheck(videos, detection)
        }
        return self.merged_copy(detection, answers)

    def verdicts(self, videos: list[CaptionVideo], detection: Detection) -> list[Verdict]:
        """A Verdict per frame: label and score from the (merged) smoothed score, the rules whose keywords
        matched, and the model's re-check where there was one."""
        out = []
        for video in videos:
            model = self.model_scores(video, ask=False) if self.scorer is not None else None
            for i, result in enumerate(detection.results[video.video]):
                smoothed = float(detection.scores[video.video][i])
                verdict = trigger_verdict(
                    video.frame_id(i), result, smoothed, detection.threshold, self.scale, self.rulebook
                )
                verdict.meta["smoothed_score"] = round(smoothed, 4)
                if not video.captions[i]:
                    verdict.meta["no_caption"] = True  # a blank line: no evidence, its neighbours' smoothed score
                if i in video.cut:
                    verdict.meta["caption_cut"] = True
                if model is not None and not np.isnan(model[i]):
                    verdict.meta["model_score"] = round(float(model[i]), 4)  # the scoring stage's P(yes)
                if (video.video, i) in detection.rechecks:
                    recheck_verdict = detection.rechecks[(video.video, i)]
                    verdict.meta.update(
                        stage="trigger+recheck", recheck=recheck_verdict.model_dump(mode="json", exclude_none=True)
                    )
                out.append(verdict)
        return out


def videos_of(rows) -> list[CaptionVideo]:
    """Observation rows as videos: rows of one group (a video's frames, in order) form one video; a row
    without a group (a still image) is a video of one frame."""
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row.group if row.group is not None else f"\0{row.sample_id}", []).append(row)
    return [
        CaptionVideo(
            frames[0].group or frames[0].sample_id,
            [r.text for r in frames],
            ids=[r.sample_id for r in frames],
            cut={i for i, r in enumerate(frames) if r.cut},
        )
        for frames in groups.values()
    ]


def detect_rows(
    rows,
    reference_rows,
    rulebook,
    settings,
    embedder,
    backend,
    journal_folder,
    on_progress=None,
    on_message=None,
    line_seconds=None,
) -> tuple[list[Verdict], list[Event]]:
    """`axr detect` on observations: Verdicts for `rows`, the detector fitted on `reference_rows` (normal);
    `backend` (None without a model stage) scores every caption with `scoring.policy: all`, re-checks what
    the policy chooses, and with `events.explain` explains each detected event (else the events come back
    without a verdict)."""
    videos, references = videos_of(rows), videos_of(reference_rows)
    detector = CaptionDetector(rulebook, settings, embedder=embedder, line_seconds=line_seconds)
    scorer = detector.prepared_scorer(backend, references, videos, on_message, on_progress)
    detector.fit(references, videos, scorer)
    detection = detector.score(videos)
    model = backend.model if backend is not None else "none"
    detector.recheck(
        videos, detection, lambda: backend, journal_folder, model, on_progress=on_progress, on_message=on_message
    )
    events = detector.find_events(detection)
    if detector.settings.events.explain and events:
        if on_message:
            on_message(f"explaining {len(events)} detected events with {model}")
        detector.explain_events(events, videos, lambda: backend, journal_folder, model, on_progress)
    return detector.verdicts(videos, detection), events
