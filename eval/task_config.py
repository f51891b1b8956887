"""The shape of a task file, typed: a misspelt or unknown key fails at load, naming the file and the field.

One model per part of a task; the pipeline's settings depend on its `mode` (the sample modes share one
shape, the caption mode has its own). Defaults here are the defaults a task file may leave out; the shipped
bases (`_images.yaml`, `captions.yaml`) spell them out for readers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializationInfo, field_serializer

from axr.reasoning.backends.openai_server import public_url
from axr.reasoning.settings import DetectorSettings, InductionSettings, RecheckPolicy, Strict


class Endpoint(Strict):
    """Settings that name a model server; written out (task.json, metrics) without credentials in the URL."""

    base_url: str | None = None
    timeout_s: float = Field(120.0, gt=0)  # openai: per try of one request; raise it for a slow model on a CPU

    @field_serializer("base_url")
    def _public(self, url: str | None, info: SerializationInfo) -> str | None:
        return public_url(url) if (info.context or {}).get("public") else url


class DatasetConfig(Strict):
    adapter: str | None = None  # a dataset adapter (axr.eval.datasets), or anomalyruler_captions
    data_dir: str | None = None  # a `data:` reference or a path (relative to the working directory)
    split: str = "test"  # held out; the train split (normal only) feeds references
    options: dict[str, Any] = Field(default_factory=dict)  # adapter options, e.g. {normal_train: 100}
    # caption sets: how long one caption line covers (1 / fps for a caption a frame; 1.0 for UCF-Crime's
    # one-second windows), so smoothing windows are in seconds; null: one frame at 24 fps
    line_seconds: float | None = Field(None, gt=0)
    encoding: str | None = None  # caption and label files' encoding; null: UTF-8, or UTF-16/UTF-8 by a BOM


class ReferencesConfig(Strict):
    count: int = Field(0, ge=0)  # normal images shown before the query


class VideoConfig(Strict):
    fps: float = Field(1.0, gt=0)
    frames: int = Field(8, ge=1)


class SamplePipeline(Endpoint):
    """direct (a Verdict per sample), mcq (one multiple-choice answer per question) or mcq_from_verdict."""

    mode: Literal["direct", "mcq", "mcq_from_verdict"]
    domain: str = "object"
    backend: str = "openai"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    concurrency: int = Field(8, ge=1)
    batch: int = Field(8, ge=1)
    max_tokens: int = Field(512, ge=1)
    rules: str | None = None
    references: ReferencesConfig = Field(default_factory=ReferencesConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)


class RecheckConfig(Endpoint, RecheckPolicy):
    """The re-check's policy (reasoning.settings) and the model that answers it."""

    backend: str = "openai"
    model: str = "smollm2"
    max_tokens: int = Field(400, ge=1)
    concurrency: int = Field(8, ge=1)


class CaptionPipeline(DetectorSettings):
    """captions: per-frame captions -> trigger -> optional model re-check -> smoothing -> threshold (the
    detector's settings, reasoning.settings), plus the rule book and how to induce one."""

    mode: Literal["captions"]
    rules: str | None = None  # a rule book, an AnomalyRuler rule file, or "induce"
    induction: InductionSettings = Field(default_factory=InductionSettings)
    recheck: RecheckConfig = Field(default_factory=RecheckConfig)


class SplitConfig(Strict):
    reference_every: int = Field(3, ge=2)  # every n-th video is a reference video
    # evaluate every n-th held-out video (in name order, from the first): a subset stated before any result,
    # for a model too slow for the whole set
    evaluate_every: int = Field(1, ge=1)
    scene_pattern: str | None = None  # a regex whose first group is a video's scene


class JudgeSpec(Endpoint):
    backend: str
    model: str


class JudgeConfig(Strict):
    judges: list[JudgeSpec] = Field(min_length=1)


class TaskConfig(Strict):
    task: str
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    pipeline: Annotated[SamplePipeline | CaptionPipeline, Field(discriminator="mode")]
    split: SplitConfig = Field(default_factory=SplitConfig)
    metrics: list[str] = Field(default_factory=list)
    judge: JudgeConfig | None = None
    published: dict[str, Any] | None = None  # a paper's figures, printed beside AXR's

    @property
    def mode(self) -> str:
        return self.pipeline.mode

    def public_json(self) -> str:
        """The task as a run folder keeps it (task.json): server URLs without credentials."""
        return self.model_dump_json(indent=2, context={"public": True})
