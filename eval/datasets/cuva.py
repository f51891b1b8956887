"""CUVA / ECVA video annotations: per video a type, what happened, why (cause), how (effect), and moments.

Layout: <root>/annotations.json (a list of objects, or an object keyed by video name) and
<root>/videos/<video>.mp4 (or any video file with that stem). Field names vary between releases, so each
field accepts the spellings below, case-insensitively. Moments are [start, end] seconds or "s-e" strings.
Every CUVA video holds an anomaly (label 1); all of it is test data.
"""

from __future__ import annotations

import re
from pathlib import Path

from axr.eval.datasets.layout import LayoutError, read_json, require
from axr.reasoning.schema import GroundTruthRationale, Sample

FIELDS = {
    "video": ("video", "video_name", "name", "visual_input", "video_id"),
    "type": ("type", "anomaly_type", "category"),
    "what": ("description", "what"),
    "why": ("cause", "why", "reason"),
    "how": ("result", "effect", "how"),
    "moments": ("moments", "moment", "timestamps", "time_spans", "timestamp"),
    "key_sentences": ("key_sentences", "key sentences", "key_sentence", "key sentence"),
}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")


def _field(entry: dict, name: str, where: str, required: bool = False):
    lowered = {k.lower(): v for k, v in entry.items()}
    for spelling in FIELDS[name]:
        if spelling in lowered:
            return lowered[spelling]
    if required:
        raise LayoutError(f"{where}: missing field {name!r} (accepted: {', '.join(FIELDS[name])})")
    return None


def parse_moments(value, where: str) -> list[list[float]]:
    """[[start, end], ...] in seconds from a list of pairs or of "s-e" / "s,e" strings."""
    if value in (None, "", []):
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) == 2 and all(isinstance(v, int | float) for v in items):
        items = [items]
    spans = []
    for item in items:
        numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", item)] if isinstance(item, str) else item
        if not isinstance(numbers, list) or len(numbers) != 2 or numbers[1] < numbers[0]:
            raise LayoutError(f"{where}: moment {item!r} is not [start, end] seconds")
        spans.append([float(numbers[0]), float(numbers[1])])
    return spans


def _video_file(videos: Path, name: str, where: str) -> Path:
    stem = Path(name).stem
    for suffix in VIDEO_SUFFIXES:
        if (candidate := videos / f"{stem}{suffix}").is_file():
            return candidate
    raise LayoutError(f"{where}: no video file {stem}.mp4 (or .avi/.mkv/.webm/.mov) in {videos}")


def load(root: Path, split: str = "test", annotations: str = "annotations.json") -> list[Sample]:
    if split != "test":
        raise LayoutError("CUVA/ECVA annotations are evaluation data: only the test split exists")
    path = require(root / annotations, "annotation file (annotations.json)")
    videos = require(root / "videos", "videos/ folder")
    data = read_json(path)
    entries = [{"video": k, **v} for k, v in data.items()] if isinstance(data, dict) else data
    samples = []
    for number, entry in enumerate(entries):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise LayoutError(f"{where}: expected an object")
        name = str(_field(entry, "video", where, required=True))
        moments = parse_moments(_field(entry, "moments", where), where)
        rationale = GroundTruthRationale(**{k: _text(_field(entry, k, where)) for k in ("what", "why", "how")})
        samples.append(
            Sample(
                sample_id=Path(name).stem,
                video_path=str(_video_file(videos, name, where)),
                gt_label=1,
                gt_type=_text(_field(entry, "type", where)) or None,
                gt_span=moments[0] if moments else None,
                gt_rationale=rationale,
                meta={"dataset": "cuva", "moments": moments, "key_sentences": _field(entry, "key_sentences", where)},
            )
        )
    return samples


def _text(value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")
