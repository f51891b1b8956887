"""A BERT sentence encoder in NumPy (all-MiniLM-L6-v2 by default): the same weights, tokenizer and mean
pooling as sentence-transformers, without importing PyTorch. A caption run that has to embed new captions
then costs a NumPy forward pass, not a second of `import torch` and its memory; `Embedder(runtime="torch")`
keeps the sentence-transformers path. `tests/test_embedding.py` checks the vectors against it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


class NumpyBert:
    """`encode(texts)` -> unit-norm mean-pooled embeddings, from a sentence-transformers model folder
    (config.json, model.safetensors, tokenizer.json, sentence_bert_config.json)."""

    def __init__(self, folder: str | Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{folder}: not a BERT model with GELU (the NumPy encoder reads only those)")
        self.heads, self.eps = config["num_attention_heads"], config["layer_norm_eps"]
        self.layers = config["num_hidden_layers"]
        limit = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self.weights = {k: v for k, v in load_file(folder / "model.safetensors").items() if v.dtype == np.float32}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(limit)
        self.tokenizer.no_padding()
        self.dimension = self.weights["embeddings.word_embeddings.weight"].shape[1]

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(
        self, texts: list[str], show_progress_bar: bool = False, tokens_per_batch: int = 4096, **_
    ) -> np.ndarray:
        """Unit-norm vectors, called as sentence-transformers' `encode` is (its other options have no effect:
        vectors are always normalised). Texts of similar length are batched together, so padding stays short,
        and a batch holds about `tokens_per_batch` tokens, so memory stays flat (attention grows with length
        squared)."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches, batch = [], []
        for i in order:
            if batch and (len(batch) + 1) * len(encodings[i].ids) > tokens_per_batch:
                batches.append(batch)
                batch = []
            batch.append(i)
        batches += [batch] if batch else []
        if show_progress_bar:
            from rich.progress import track

            from axr.reasoning.console import err

            batches = track(batches, description=f"embedding {len(texts)} sentences", console=err, transient=True)
        out = np.zeros((len(texts), self.dimension), np.float32)
        for batch in batches:
            out[batch] = self._forward([encodings[j].ids for j in batch])
        return out

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        w, length = self.weights, max(len(x) for x in ids)
        tokens = np.zeros((len(ids), length), np.int64)
        mask = np.zeros((len(ids), length), np.float32)
        for row, x in enumerate(ids):
            tokens[row, : len(x)], mask[row, : len(x)] = x, 1.0
        hidden = (
            w["embeddings.word_embeddings.weight"][tokens]
            + w["embeddings.position_embeddings.weight"][:length]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        hidden = self._norm(hidden, "embeddings.LayerNorm")
        blocked = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding gets no attention
        for i in range(self.layers):
            hidden = self._layer(hidden, blocked, f"encoder.layer.{i}.")
        pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _layer(self, hidden: np.ndarray, blocked: np.ndarray, name: str) -> np.ndarray:
        batch, length, width = hidden.shape
        size = width // self.heads

        def heads(part: str) -> np.ndarray:
            x = self._linear(hidden, f"{name}attention.self.{part}")
            # contiguous: NumPy hands stacked products to BLAS only for contiguous operands
            return np.ascontiguousarray(x.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3))

        query, key, value = heads("query"), heads("key"), heads("value")
        scores = query @ np.ascontiguousarray(key.transpose(0, 1, 3, 2)) / np.float32(math.sqrt(size)) + blocked
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        context = (scores / scores.sum(axis=-1, keepdims=True)) @ value
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, width)
        attended = self._norm(
            self._linear(context, f"{name}attention.output.dense") + hidden, f"{name}attention.output.LayerNorm"
        )
        inner = _gelu(self._linear(attended, f"{name}intermediate.dense"))
        return self._norm(self._linear(inner, f"{name}output.dense") + attended, f"{name}output.LayerNorm")

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1])  # one GEMM for the whole batch
        out = flat @ self.weights[f"{name}.weight"].T + self.weights[f"{name}.bias"]
        return out.reshape(*x.shape[:-1], -1)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(variance + self.eps) * self.weights[f"{name}.weight"] + self.weights[
            f"{name}.bias"
        ]


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU by its tanh form (within 1e-3 of BERT's erf form; a third of the time in NumPy)."""
    inner = np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))
