"""Captions for images and video frames: batched through any backend, cached in SQLite by content.

The cache key is sha256(media) + model + prompt version + input mode, so a new prompt wording or another
model re-captions, and the same picture under another file name does not. A text-only model gets
measurements of the image instead of its pixels (`media.image_stats`); its records say `input: image-stats`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from axr.reasoning.backends.base import Backend, Sampling, user
from axr.reasoning.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaError,
    image_stats,
    list_images,
    load_image,
    sample_frames,
    sha256_of,
)
from axr.reasoning.prompting import render, template_version
from axr.reasoning.schema import Caption


def default_caption_cache() -> Path:
    """$AXR_CACHE/captions.sqlite, read when called."""
    from axr.reasoning.resources import cache_dir

    return cache_dir() / "captions.sqlite"


class CaptionCache:
    """One SQLite file; safe to share between runs (one writer at a time)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS captions (key TEXT PRIMARY KEY, caption TEXT NOT NULL, created REAL)"
        )

    @staticmethod
    def key(media_sha256: str, model: str, prompt_version: str, mode: str) -> str:
        return hashlib.sha256("\x1f".join([media_sha256, model, prompt_version, mode]).encode()).hexdigest()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT caption FROM captions WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, caption: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO captions VALUES (?, ?, ?)", (key, caption, time.time()))
        self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass
class MediaItem:
    """One image or frame to caption; `load` is deferred so a bad file fails as a record, not the run. An
    input that could not be read at all is an item too, with its `error` (load raises it)."""

    sample_id: str
    source: str
    frame_index: int | None = None
    image: Image.Image | None = None
    error: str | None = None

    def load(self) -> Image.Image:
        if self.error:
            raise MediaError(self.error)
        return self.image if self.image is not None else load_image(self.source)


def collect_media(
    inputs: Iterable[str | Path], fps: float | None = None, stride: int | None = None
) -> Iterator[MediaItem]:
    """MediaItems from image files, folders of images, and video files (frames sampled); an input that
    cannot be read at all is one item with its error."""
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for image in list_images(path):
                yield MediaItem(str(image.relative_to(path).with_suffix("")), str(image))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            try:
                frames = sample_frames(path, fps=fps, stride=stride)
            except MediaError as err:
                yield MediaItem(str(path), str(path), error=str(err))
                continue
            for frame in frames:
                yield MediaItem(f"{path.stem}/{frame.index:06d}", str(path), frame.index, frame.image)
        elif path.suffix.lower() in IMAGE_SUFFIXES or path.is_file():
            yield MediaItem(path.stem, str(path))
        else:
            yield MediaItem(str(path), str(path), error=f"{path}: no such file or folder")


# Room for the 800-character cap on a caption even at one character a token, so constrained decoding always
# closes the JSON (a random test model otherwise runs out of tokens mid-string); real captions stop far sooner.
CAPTION_TOKENS = 1024


class Captioner:
    def __init__(
        self,
        backend: Backend,
        cache: CaptionCache | None = None,
        subject: str = "scene",
        batch_size: int = 8,
        sampling: Sampling | None = None,
    ):
        self.backend, self.cache, self.subject, self.batch_size = backend, cache, subject, batch_size
        self.sampling = sampling or Sampling(max_tokens=CAPTION_TOKENS)
        self.prompt_version = template_version("caption")
        self.mode = "image" if backend.supports_images else "image-stats"

    def run(self, items: Iterable, on_captioned: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Records in the order their batch finished: cached ones at once, others as each batch returns."""
        pending: list[tuple[MediaItem, Image.Image, str]] = []
        for item in items:
            record = self._prepare(item, pending)
            if record is not None:
                yield record
                if on_captioned:
                    on_captioned(1)
            if len(pending) >= self.batch_size:
                yield from self._flush(pending, on_captioned)
        if pending:
            yield from self._flush(pending, on_captioned)

    def _base(self, item: MediaItem) -> dict[str, Any]:
        record = {"sample_id": item.sample_id, "image_path": item.source}
        if item.frame_index is not None:
            record["frame_index"] = item.frame_index
        return record

    def _prepare(self, item: MediaItem, pending: list) -> dict[str, Any] | None:
        """A finished record (cached, or an error), or None after queueing the item for the model."""
        try:
            image = item.load()
        except MediaError as err:
            return {**self._base(item), "error": str(err)}
        digest = sha256_of(image if item.image is not None else item.source)
        key = CaptionCache.key(digest, self.backend.model, self.prompt_version, self.mode)
        cached = self.cache.get(key) if self.cache else None
        if cached is not None:
            return {**self._base(item), **self._meta(digest), "caption": cached, "cached": True}
        pending.append((item, image, digest))
        return None

    def _meta(self, digest: str) -> dict[str, Any]:
        return {
            "model": self.backend.model,
            "prompt_version": self.prompt_version,
            "input": self.mode,
            "media_sha256": digest,
        }

    def _request(self, image: Image.Image) -> list[dict]:
        if self.backend.supports_images:
            prompt = render("caption", subject=self.subject, image_stats=None, schema=Caption)
            return [user(prompt, [image])]
        prompt = render("caption", subject=self.subject, image_stats=image_stats(image), schema=Caption)
        return [user(prompt)]

    def _flush(self, pending: list, on_captioned: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
        batch = list(pending)
        pending.clear()
        completions = self.backend.generate([self._request(img) for _, img, _ in batch], self.sampling, Caption)
        for (item, _, digest), completion in zip(batch, completions, strict=True):
            record = {**self._base(item), **self._meta(digest)}
            cost = {"tokens_in": completion.tokens_in, "tokens_out": completion.tokens_out}
            if completion.parsed is not None:
                caption = completion.parsed.caption
                if self.cache:
                    key = CaptionCache.key(digest, self.backend.model, self.prompt_version, self.mode)
                    self.cache.put(key, caption)
                record.update(caption=caption, cached=False, repaired=completion.repaired, **cost)
            else:
                record.update(error=f"unparsed: {completion.parse_error}", raw=completion.text, **cost)
            yield record
        if on_captioned:
            on_captioned(len(batch))
