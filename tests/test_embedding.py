"""Sentence embeddings: the NumPy MiniLM gives sentence-transformers' vectors without PyTorch, and each
runtime keeps its own cache entries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from axr.reasoning.embedding import Embedder

TEXTS = [
    "A man is riding a bicycle through the crowd.",
    "Two people are walking on the pathway. Other than people, there are trees and a building.",
    "",
    "word " * 400,  # longer than the model's 256 tokens: truncated the same way
]


def test_numpy_runtime_gives_sentence_transformers_vectors():
    numpy_vectors = Embedder(cache=None, runtime="numpy").encode(TEXTS)
    torch_vectors = Embedder(cache=None, runtime="torch").encode(TEXTS)
    assert numpy_vectors.shape == torch_vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(numpy_vectors, axis=1), 1.0, atol=1e-5)
    assert (numpy_vectors * torch_vectors).sum(axis=1).min() > 0.9999


def test_each_runtime_keeps_its_own_cache_entries(tmp_path):
    cache = tmp_path / "embeddings.sqlite"
    first = Embedder(cache=cache, runtime="numpy").encode(TEXTS[:2])
    again = Embedder(cache=cache, runtime="numpy")
    assert (
        np.array_equal(again.encode(TEXTS[:2]), first)
        and not again._db.execute(
            "SELECT 1 FROM emb WHERE key = ?", (Embedder(cache=None, runtime="torch")._key(TEXTS[0]),)
        ).fetchone()
    )
    with pytest.raises(ValueError, match="embedding runtime 'onnx': choose numpy or torch"):
        Embedder(cache=None, runtime="onnx")


def test_a_run_that_embeds_with_numpy_never_imports_torch(tmp_path):
    code = (
        "import sys; from axr.reasoning.embedding import Embedder; "
        f"Embedder(cache={str(tmp_path / 'e.sqlite')!r}).encode(['a man runs']); "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
