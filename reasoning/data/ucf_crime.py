"""UCF-Crime as a caption set, built by `axr data fetch ucf-crime` from three public files (never shipped: the
captions carry no licence):

- CoReVAD's InternVL2-8B captions, one per 30-frame window of each of the 290 test videos; each starts with
  the captioner's own verdict ("Normal scenes." / "Anomalous scenes."), removed here: it is a prediction,
  not a description;
- VadCLIP's temporal annotations (Apache-2.0): up to two anomalous frame intervals per video, -1 for none;
- VADTree's frame counts of the test videos: a video has ceil(frames / 30) windows (a caption past the last
  frame is dropped).

A window is anomalous when at least half of its frames lie inside an annotated interval. The layout written
is AnomalyRuler's (`test_frame_description/<video>.txt`, `test_frame/<video>.csv`), one line a window.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

WINDOW = 30  # frames a caption covers (30 fps video: one second)
CAPTIONS = "Muk-00/CoReVAD/76ea2a0ac4ee521b9ea8d28898ad4c12731e3ef0/src/ucf/outputs/VLM_responses_LRC_ucf.json"
ANNOTATIONS = "nwpu-zxr/VadCLIP/f643c9132adcc0ea2aa549568ab30c49a45f0159/list/Temporal_Anomaly_Annotation.txt"
FRAME_COUNTS = (
    "wenlongli10/VADTree/0b5c54eba0d746a232c70a97961bb7a9d684cce5/dataset_info/ucf_crime/annotations/anomaly_test.txt"
)
SOURCES = (CAPTIONS, ANNOTATIONS, FRAME_COUNTS)
VERDICT_PREFIXES = ("Normal scenes.", "Anomalous scenes.")


class BuildError(ValueError):
    """A source file is not what the builder expects; the message names the file and line."""


def build(files: dict[str, Path], into: Path) -> int:
    """Write the caption set from the downloaded `files` (source path -> local file) into `into`; returns the
    number of videos."""
    captions = _captions(files[CAPTIONS])
    intervals = _intervals(files[ANNOTATIONS])
    frames = _frame_counts(files[FRAME_COUNTS])
    (into / "test_frame_description").mkdir(parents=True, exist_ok=True)
    (into / "test_frame").mkdir(parents=True, exist_ok=True)
    for video, lines in sorted(captions.items()):
        if video not in frames:
            raise BuildError(f"{FRAME_COUNTS}: no frame count for {video}")
        lines = [strip_verdict(line) for line in lines[: math.ceil(frames[video] / WINDOW)]]
        labels = window_labels(len(lines), frames[video], intervals.get(video, []))
        (into / "test_frame_description" / f"{video}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        rows = ["image_path,label"] + [f"{video}/{i:05d},{y}" for i, y in enumerate(labels)]
        (into / "test_frame" / f"{video}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(captions)


def strip_verdict(caption: str) -> str:
    for prefix in VERDICT_PREFIXES:
        if caption.startswith(prefix):
            return caption[len(prefix) :].strip()
    return caption.strip()


def window_labels(windows: int, frames: int, intervals: list[tuple[int, int]]) -> list[int]:
    """1 for a window with at least half of its frames inside an interval [start, end] (frame numbers)."""
    labels = []
    for i in range(windows):
        span = range(WINDOW * i, min(WINDOW * (i + 1), frames))
        inside = sum(any(start <= f <= end for start, end in intervals) for f in span)
        labels.append(int(len(span) > 0 and 2 * inside >= len(span)))
    return labels


def _captions(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BuildError(f"{CAPTIONS}: not JSON ({error})") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in data.values()
    ):
        raise BuildError(f"{CAPTIONS}: expected {{video: [caption, ...]}}")
    return data


def _intervals(path: Path) -> dict[str, list[tuple[int, int]]]:
    """`<video> <class> <start> <end> <start> <end>` per line, -1 for no interval."""
    out = {}
    for video, (s1, e1, s2, e2) in _rows(path, ANNOTATIONS, slice(2, 6)):
        out[video] = [(s, e) for s, e in ((s1, e1), (s2, e2)) if s >= 0 and e >= 0]
    return out


def _frame_counts(path: Path) -> dict[str, int]:
    """`<video> <first frame> <frames> <class index>` per line."""
    return {video: frames for video, (frames,) in _rows(path, FRAME_COUNTS, slice(2, 3))}


def _rows(path: Path, source: str, numbers: slice):
    """(first field, the integer fields `numbers` picks) of each non-blank line."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = text.split()
        if not parts:
            continue
        try:
            values = [int(x) for x in parts[numbers]]
            if len(values) != numbers.stop - numbers.start:
                raise ValueError(f"{len(parts)} fields")
        except ValueError as error:
            raise BuildError(f"{source}:{number}: not the expected layout ({error})") from None
        yield parts[0], values
