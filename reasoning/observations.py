"""Observations (captions) for the rule stages: read from files (`axr caption` JSONL, or text files with one
caption per frame), or made by captioning images and videos."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from axr.reasoning.text_files import cut_caption, read_lines


@dataclass
class ObservationRow:
    sample_id: str
    text: str  # "" for a frame with no caption (a blank line): it keeps its place in the video
    group: str | None = None  # the video a frame belongs to; frames of one group are smoothed together
    frame_index: int | None = None
    cut: bool = False  # the caption was longer than MAX_CAPTION_CHARS and was cut


@dataclass
class Observations:
    """What caption files held: the rows, and the rows that could not be read ("file:line: why"), each
    recorded rather than fatal, so one bad row costs only itself."""

    rows: list[ObservationRow] = field(default_factory=list)
    bad_rows: list[str] = field(default_factory=list)

    def __iadd__(self, other: Observations) -> Observations:
        self.rows += other.rows
        self.bad_rows += other.bad_rows
        return self


def load_observations(paths: list[Path], encoding: str | None = None) -> Observations:
    """JSONL records with a `caption` (error records of `axr caption` are skipped), or .txt files (one frame
    per line), decoded as `axr.reasoning.text_files` says. A row or a whole file that cannot be read is a bad
    row ("file:line: why"); the others are read."""
    found = Observations()
    for path in paths:
        if path.is_dir():
            found += load_observations(sorted(p for p in path.iterdir() if p.suffix in (".txt", ".jsonl")), encoding)
            continue
        try:
            found += _from_file(path, encoding)
        except (ValueError, OSError) as error:  # TextFileError is a ValueError
            found.bad_rows.append(str(error) if isinstance(error, ValueError) else f"{path}: {error.strerror}")
    return found


def _from_file(path: Path, encoding: str | None) -> Observations:
    if path.suffix == ".jsonl":
        return _from_jsonl(path, encoding)
    if path.suffix != ".txt":
        raise ValueError(f"{path}: expected a .jsonl of captions or a .txt with one caption per line")
    lines = read_lines(path, encoding)
    if not lines:
        raise ValueError(f"{path}: empty caption file")
    return Observations([_row(f"{path.stem}/{i:06d}", t, path.stem, i) for i, t in enumerate(lines)])


def _row(sample_id: str, text: str, group: str | None, frame: int | None) -> ObservationRow:
    caption, cut = cut_caption(text)
    return ObservationRow(sample_id, caption, group, frame, cut)


def _from_jsonl(path: Path, encoding: str | None) -> Observations:
    found = Observations()
    for number, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            found.bad_rows.append(f"{path}:{number}: not JSON ({error.msg})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("caption", ""), str):
            found.bad_rows.append(f"{path}:{number}: not a caption record (an object with a string 'caption')")
        elif "error" in record:
            continue  # a frame `axr caption` could not caption: recorded there with its error
        elif "caption" not in record:
            found.bad_rows.append(f"{path}:{number}: no 'caption' field")
        else:
            frame = record.get("frame_index")
            sample_id = str(record.get("sample_id") or f"{path.stem}:{number}")
            group = sample_id.rsplit("/", 1)[0] if isinstance(frame, int) and "/" in sample_id else None
            found.rows.append(_row(sample_id, record["caption"], group, frame if group else None))
    return found


def observations_from(
    inputs: list[Path], backend, subject: str, on_message=print, encoding: str | None = None
) -> Observations:
    """Observations from caption files as they are, or from images and videos captioned by `backend` (an
    image that cannot be read is reported through `on_message` and skipped)."""
    from axr.reasoning.perception import CaptionCache, Captioner, collect_media, default_caption_cache

    text = [p for p in inputs if p.suffix in (".txt", ".jsonl") or (p.is_dir() and not _has_images(p))]
    media = [p for p in inputs if p not in text]
    found = load_observations(text, encoding)
    if media:
        if backend is None:
            raise ValueError("images and videos need a backend to caption them (--backend, --model)")
        captioner = Captioner(backend, CaptionCache(default_caption_cache()), subject)
        for record in captioner.run(collect_media(media)):
            if "error" in record:
                on_message(f"skipped {record['error']}")
                continue
            frame = record.get("frame_index")
            group = record["sample_id"].rsplit("/", 1)[0] if frame is not None else None
            found.rows.append(_row(record["sample_id"], record["caption"], group, frame))
    return found


def _has_images(folder: Path) -> bool:
    from axr.reasoning.media import IMAGE_SUFFIXES

    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))
