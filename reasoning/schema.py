"""The records that flow through AXR: Sample -> caption -> RuleBook -> Verdict -> Judgement.

Field names follow anomalib (`image_path`, `gt_label`, `pred_label`, `pred_score`, `explanation`) so that
results line up with anomalib baselines. One pydantic model per chain step drives every backend: its JSON
schema is what vLLM's structured outputs enforce and what the prompt shows a transformers model.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from axr.reasoning.settings import InductionSettings
from axr.reasoning.text_files import TextFileError, read_text

Label = Literal["normal", "anomalous"]
Severity = Literal["none", "low", "medium", "high", "critical"]


class SchemaError(ValueError):
    """A file or record does not match its schema; the message names the file and the field."""


class Rationale(BaseModel):
    """Why a verdict was reached: what is wrong, why it counts as anomalous, how it shows or matters."""

    # Lengths are bounded so that constrained decoding always ends the object, however a model rambles.
    what: str = Field("", max_length=400, description="what is anomalous (or, for a normal verdict, what was checked)")
    why: str = Field("", max_length=400, description="why it violates the normal rules or expectations")
    how: str = Field("", max_length=400, description="how it manifests or what effect it has")


class GroundTruthRationale(Rationale):
    """A reference explanation written by a person (or a template), for judges and training targets.

    Not generated under constrained decoding, so its fields may be longer than a model's answer."""

    what: str = Field("", max_length=4000)
    why: str = Field("", max_length=4000)
    how: str = Field("", max_length=4000)


class Sample(BaseModel):
    """One unit to judge: an image, a set of video frames, or a rendered series, with optional ground truth."""

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    image_path: str | None = None
    video_path: str | None = None
    frame_indices: list[int] | None = None
    timestamps: list[float] | None = None
    series: list[float] | None = Field(None, description="raw values when the image is a rendered series")
    caption: str | None = Field(None, description="a precomputed observation (e.g. AnomalyRuler caption sets)")
    references: list[str] = Field(default_factory=list, description="paths of normal reference images")
    gt_label: int | None = Field(None, description="1 anomalous, 0 normal, None unknown")
    gt_type: str | None = None
    gt_mask: str | None = None
    gt_box: list[float] | None = Field(None, description="normalised [x0, y0, x1, y1]")
    gt_span: list[float] | None = Field(None, description="[start, end] seconds for video")
    gt_rationale: GroundTruthRationale | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_media(self) -> Sample:
        if not (self.image_path or self.video_path or self.caption or self.series):
            raise ValueError("a sample needs image_path, video_path, caption or series")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    text: str = Field(min_length=1, description="the abstract rule")
    examples: list[str] = Field(default_factory=list, description="concrete instances of the rule")
    keywords: list[str] = Field(default_factory=list, description="trigger words for the cheap stage")
    support: int = Field(1, ge=0, description="how many induction batches produced this rule")
    enabled: bool = True


class RuleSection(BaseModel):
    """One domain of rules, e.g. 'human activity' or 'environment' for scenes, 'appearance' for objects."""

    model_config = ConfigDict(extra="forbid")

    name: str
    normal: list[Rule] = Field(default_factory=list)
    anomaly: list[Rule] = Field(default_factory=list)


class Cost(BaseModel):
    """What an answer cost: model calls (a repair turn is a second one) and tokens. The one cost vocabulary of
    completions, verdicts, backends' running usage and run records."""

    model_config = ConfigDict(extra="forbid")

    model_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            model_calls=self.model_calls + other.model_calls,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
        )


class Provenance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    backend: str | None = None
    prompt_version: str | None = None
    reference_ids: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=list)
    date: str = Field(default_factory=lambda: _dt.date.today().isoformat())
    source: str | None = Field(None, description="e.g. the file a rule book was imported from")
    cost: Cost | None = Field(None, description="what inducing the rule book took")
    induction: InductionSettings | None = Field(None, description="the settings that induced the rule book")


class RuleBook(BaseModel):
    """Normal and anomaly rules, by section; YAML on disk, editable and diffable by a person."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = 1
    domain: str = Field("scene", description="scene | object | series | any free-form domain name")
    sections: list[RuleSection]
    provenance: Provenance = Field(default_factory=Provenance)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleBook:
        seen: set[str] = set()
        for rule in self.rules():
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears more than once")
            seen.add(rule.id)
        return self

    def rules(self, kind: Literal["normal", "anomaly"] | None = None, enabled_only: bool = False) -> list[Rule]:
        out = []
        for section in self.sections:
            for k in ("normal", "anomaly"):
                if kind in (None, k):
                    out.extend(r for r in getattr(section, k) if r.enabled or not enabled_only)
        return out

    def rule_ids(self) -> set[str]:
        return {r.id for r in self.rules()}

    @classmethod
    def load(cls, path: str | Path) -> RuleBook:
        path = Path(path)
        data = read_yaml_mapping(path, "rule book")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise SchemaError(f"{path}: {describe_validation_error(err)}") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")
        return path


class BoundingBox(BaseModel):
    """A box normalised to [0, 1] in image coordinates."""

    x0: float = Field(ge=0, le=1)
    y0: float = Field(ge=0, le=1)
    x1: float = Field(ge=0, le=1)
    y1: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BoundingBox:
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError("box corners must satisfy x0 <= x1 and y0 <= y1")
        return self


class VerdictAnswer(BaseModel):
    """What a model writes for one sample; its JSON schema is the structured-output contract.

    Field order is generation order under constrained decoding: the evidence, the rules it matches and the
    rationale come before the verdict, so a model decides after stating what it saw, not before.
    """

    model_config = ConfigDict(extra="forbid")

    evidence: list[str] = Field(
        default_factory=list, max_length=5, description="observations that support the verdict"
    )
    rules_matched: list[str] = Field(default_factory=list, max_length=20, description="ids of rules in the rule book")
    rationale: Rationale = Field(default_factory=Rationale)
    verdict: Label
    score: float = Field(ge=0, le=1, description="how anomalous, continuous, kept apart from the label")
    anomaly_type: str | None = Field(
        None, max_length=60, description="e.g. scratch, missing part, running; null when normal"
    )
    severity: Severity = "none"
    location: BoundingBox | Annotated[str, Field(max_length=60)] | None = Field(
        None, description="normalised box or a region name"
    )
    time_span: list[float] | None = Field(None, max_length=2, description="[start, end] seconds, for video")
    confidence: float = Field(0.5, ge=0, le=1)


class Verdict(VerdictAnswer):
    """A verdict as AXR records it: the model's answer plus what the code knows about how it was made.

    `verdict == "unparsed"` means the model's output failed validation even after one repair turn; the raw
    text is kept in `raw` and nothing is guessed.
    """

    model_config = ConfigDict(extra="forbid")

    verdict: Label | Literal["unparsed"]  # type: ignore[assignment]
    score: float | None = Field(None, ge=0, le=1)  # type: ignore[assignment]
    sample_id: str | None = None
    raw: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def pred_label(self) -> int | None:
        return {"anomalous": 1, "normal": 0}.get(self.verdict)

    def cost(self) -> Cost:
        """What making this verdict cost (as the backend's Completion.cost() put it in meta)."""
        return Cost(**{key: int(self.meta.get(key, 0)) for key in Cost.model_fields})

    @classmethod
    def unparsed(cls, raw: str, error: str, sample_id: str | None = None, **meta: Any) -> Verdict:
        return cls(verdict="unparsed", raw=raw, sample_id=sample_id, meta={"parse_error": error, **meta})


CRITERIA = {
    "what": ["consistency", "details", "relevance", "temporal_coherence", "anomaly_recognition"],
    "why": ["consistency", "causal_explanation", "evidence_support", "logical_structure", "clarity"],
    "how": ["consistency", "causal_explanation", "evidence_support", "logical_structure", "clarity"],
}


Grade = Annotated[int, Field(ge=0, le=2)]


def _dimension_model(dimension: str) -> type[BaseModel]:
    """One dimension's rubric: every criterion a required key scored 0 (absent/wrong), 1 (partly), 2 (fully)."""
    fields = {criterion: (Grade, ...) for criterion in CRITERIA[dimension]}
    return create_model(f"{dimension.capitalize()}Scores", __config__=ConfigDict(extra="forbid"), **fields)


WhatScores, WhyScores, HowScores = (_dimension_model(d) for d in ("what", "why", "how"))


class JudgeAnswer(BaseModel):
    """What a judge model writes: each dimension's criteria scored 0-2 (fixed keys, so structured output cannot
    skip or invent a criterion), then one short comment."""

    model_config = ConfigDict(extra="forbid")

    what: WhatScores
    why: WhyScores
    how: HowScores
    comment: str = Field("", max_length=300)


class Judgement(JudgeAnswer):
    """A judge's answer for one sample as AXR records it; `scores()` gives 0-10 per dimension."""

    sample_id: str | None = None
    judge: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    def scores(self) -> dict[str, int]:
        return {d: sum(getattr(self, d).model_dump().values()) for d in CRITERIA}


class Caption(BaseModel):
    """The perception step's structured answer."""

    # Bounded so constrained decoding always closes the object, even for a model that would ramble on.
    caption: str = Field(min_length=1, max_length=800)

    @field_validator("caption")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("caption is empty")
        return value


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping (safe_load only); errors name the file."""
    try:
        data = yaml.safe_load(read_text(path, option=None))
    except FileNotFoundError:
        raise SchemaError(f"{path}: {what} not found") from None
    except TextFileError as error:
        raise SchemaError(str(error)) from None
    except yaml.YAMLError as err:
        raise SchemaError(f"{path}: not valid YAML ({yaml_problem(err)})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: a {what} must be a YAML mapping, got {type(data).__name__}")
    return data


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML parser's error in one line: where (line, column) and what, not its multi-line dump."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or _first_line(err)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def named_yaml(name_or_path: str, folder: Path, what: str, error_cls: type[Exception] = SchemaError) -> Path:
    """A YAML path as given, or the shipped `<folder>/<name>.yaml`; an unknown name lists the shipped ones."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_")))
        raise error_cls(f"unknown {what} {name_or_path!r}; known: {known}")
    return candidate


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema given to structured-output engines and shown in prompts."""
    return model.model_json_schema()


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first failing field, e.g. `sections.0.anomaly.2.text: Field required`."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _first_line(err: Exception) -> str:
    return re.sub(r"\s+", " ", str(err)).strip()[:200]


class InducedRule(BaseModel):
    """A rule as an induction step proposes it; ids, support and provenance are assigned in code."""

    text: str = Field(min_length=1, max_length=200)
    examples: list[Annotated[str, Field(max_length=120)]] = Field(default_factory=list, max_length=4)
    keywords: list[Annotated[str, Field(max_length=30)]] = Field(default_factory=list, max_length=8)


class InducedSection(BaseModel):
    name: str = Field(max_length=60)
    rules: list[InducedRule] = Field(min_length=1, max_length=8)  # constrained decoding must propose one


class InducedRules(BaseModel):
    """The answer of one induction call (normal rules, or anomaly rules contrasted with them)."""

    model_config = ConfigDict(extra="forbid")

    sections: list[InducedSection] = Field(min_length=1, max_length=4)


class RuleKeywords(BaseModel):
    id: str = Field(max_length=40)
    keywords: list[Annotated[str, Field(max_length=30)]] = Field(max_length=8)


class KeywordProposal(BaseModel):
    """The answer of the aggregation call: trigger keywords proposed per anomaly rule."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RuleKeywords]


class ChoiceAnswer(BaseModel):
    """A multiple-choice answer (MMAD): a short reason first, then exactly one option letter."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=300, description="what in the image decides the answer")
    answer: Literal["A", "B", "C", "D", "E"]


def location_box(verdict) -> list[float] | None:
    """A verdict's (model or dict) location as [x0, y0, x1, y1] when it is a box (a region name is not a box)."""
    location = (verdict if isinstance(verdict, dict) else verdict.model_dump()).get("location")
    if isinstance(location, dict) and {"x0", "y0", "x1", "y1"} <= set(location):
        return [float(location[k]) for k in ("x0", "y0", "x1", "y1")]
    return None
