"""Typed settings of the reasoning stages, each defined once: the caption detector's (trigger, smoothing,
threshold, re-check policy) and rule induction's. A caption task's pipeline section extends these classes
(`axr.eval.task_config`), `axr detect` and `axr induce` fill them from their options, and the stages read
them directly, so a default lives here and nowhere else.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_LINE_SECONDS = 1 / 24  # one frame of 24 fps video, when a caption set does not say what a line covers

Policy = Literal["none", "uncertain", "positives", "all"]
POLICIES: tuple[str, ...] = get_args(Policy)


class Strict(BaseModel):
    """A misspelt or unknown key fails at load, naming the field."""

    model_config = ConfigDict(extra="forbid")


class InductionSettings(Strict):
    domain: str = "scene"
    sections: list[str] = Field(default_factory=list)  # default: the domain's sections (induction.DOMAIN_SECTIONS)
    batches: int = Field(10, ge=1)
    per_batch: int = Field(3, ge=1)
    seed: int = 0
    normal_min_support: float = 0.3  # keep a normal rule produced by >= 30% of batches
    anomaly_policy: Literal["all", "supported"] = "all"  # supported: the same threshold as normal rules
    dedup_similarity: float = 0.85
    max_keywords: int = 6
    max_normal_share: float = 0.05
    max_tokens: int = 1024


class TriggerSettings(Strict):
    # How much one keyword match counts: `adaptive`, the larger of its rarity in the normal references,
    # 1 / (1 + share / max_normal_share), and its excess in the observations, 1 - reference share / observed
    # share; `rarity`, the first alone; `drop`, 1 below max_normal_share and 0 from it (AXR before this: a
    # verbose captioner that mentions bicycles in normal frames lost the bicycle rules entirely).
    keywords: Literal["adaptive", "rarity", "drop"] = "adaptive"
    max_normal_share: float = Field(0.05, gt=0)
    exclude_normal_rule_words: bool = True  # a word the book's normal rules use is no anomaly keyword
    keyword_weight: float = 1.0
    novelty: bool = True
    novelty_unit: Literal["sentence", "clause"] = "sentence"  # clause: long sentences cut at commas/conjunctions
    synonyms: float | None = None


class SmoothingSettings(Strict):
    method: Literal["none", "mean", "ema"] = "mean"
    window_seconds: float = Field(2.5, gt=0)  # the centred mean's window, in the video's time
    window: int | None = Field(None, ge=1)  # in caption lines, instead of window_seconds
    alpha: float = 0.33

    def window_lines(self, line_seconds: float | None) -> int:
        """The window in caption lines, for lines that cover `line_seconds` each (None: DEFAULT_LINE_SECONDS)."""
        if self.window is not None:
            return self.window
        return max(1, round(self.window_seconds / (line_seconds or DEFAULT_LINE_SECONDS)))


class ThresholdSettings(Strict):
    reference_quantile: float = Field(0.95, ge=0, le=1)
    value: float | None = None  # fixed, instead of the references' quantile


class RecheckPolicy(Strict):
    policy: Policy = "none"
    band: float = Field(0.1, ge=0)  # uncertain: |smoothed score - threshold| <= band, on the trigger's scale
    min_confidence: float = Field(0.5, ge=0, le=1)


class ScoringSettings(Strict):
    # all: every distinct caption is scored by the model (P(yes) of one answer token) and fused with the
    # trigger before smoothing; none: the trigger alone
    policy: Literal["none", "all"] = "none"
    # fused = (1 - weight) x trigger part + weight x model part, each read against its normal references:
    # fisher: -log of its tail probability among them (a sure signal outweighs a merely unusual one); rank:
    # its mid-rank among them (every frame past the references counts alike)
    fusion: Literal["fisher", "rank"] = "fisher"
    weight: float = Field(0.5, ge=0, le=1)
    top_logprobs: int = Field(20, ge=2)  # first-token alternatives read for "yes" and "no"
    # normal reference frames (spread evenly over the references) whose captions the model scores for its own
    # normal distribution: the model's cost grows with the evaluated videos, not with the references
    reference_frames: int = Field(500, ge=10)


class EventSettings(Strict):
    # explain: each detected event (a run of frames above the threshold) gets one generated Verdict from the
    # re-check model, read from the event's captions; cost grows with events, not frames
    explain: bool = False
    merge_gap_seconds: float = Field(1.0, ge=0)  # runs closer than this are one event
    max_captions: int = Field(8, ge=1)  # distinct captions of an event shown to the model, spread over it


class DetectorSettings(Strict):
    """What the caption detector reads: its stages' settings, by section."""

    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    smoothing: SmoothingSettings = Field(default_factory=SmoothingSettings)
    threshold: ThresholdSettings = Field(default_factory=ThresholdSettings)
    recheck: RecheckPolicy = Field(default_factory=RecheckPolicy)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    events: EventSettings = Field(default_factory=EventSettings)
