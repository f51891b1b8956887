"""Observations (captions) for the rule stages: read from files (`axr caption` JSONL, or text files with one
caption per frame), or made by captioning images and videos."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ObservationRow:
    sample_id: str
    text: str
    group: str | None = None  # the video a frame belongs to; frames of one group are smoothed together
    frame_index: int | None = None


def load_observations(paths: list[Path]) -> list[ObservationRow]:
    """JSONL records with a `caption` (error records are skipped), or .txt files (one frame per line)."""
    rows: list[ObservationRow] = []
    for path in paths:
        if path.is_dir():
            rows += load_observations(sorted(p for p in path.iterdir() if p.suffix in (".txt", ".jsonl")))
        elif path.suffix == ".jsonl":
            rows += _from_jsonl(path)
        elif path.suffix == ".txt":
            lines = path.read_text(encoding="utf-8").splitlines()
            if not lines:
                raise ValueError(f"{path}: empty caption file")
            rows += [ObservationRow(f"{path.stem}/{i:06d}", t, path.stem, i) for i, t in enumerate(lines)]
        else:
            raise ValueError(f"{path}: expected a .jsonl of captions or a .txt with one caption per line")
    return rows


def _from_jsonl(path: Path) -> list[ObservationRow]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not JSON ({error.msg})") from None
        if "error" in record or not record.get("caption"):
            continue
        frame = record.get("frame_index")
        group = record["sample_id"].rsplit("/", 1)[0] if frame is not None else None
        rows.append(ObservationRow(record["sample_id"], record["caption"], group, frame))
    return rows


def observations_from(inputs: list[Path], backend, subject: str, on_message=print) -> list[ObservationRow]:
    """Observations from caption files as they are, or from images and videos captioned by `backend` (an
    image that cannot be read is reported through `on_message` and skipped)."""
    from axr.reasoning.perception import CaptionCache, Captioner, collect_media, default_caption_cache

    text = [p for p in inputs if p.suffix in (".txt", ".jsonl") or (p.is_dir() and not _has_images(p))]
    media = [p for p in inputs if p not in text]
    rows = load_observations(text)
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
            rows.append(ObservationRow(record["sample_id"], record["caption"], group, frame))
    return rows


def _has_images(folder: Path) -> bool:
    from axr.reasoning.media import IMAGE_SUFFIXES

    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*"))
