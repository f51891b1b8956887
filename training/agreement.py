"""How well a one-token scorer agrees with held-back pseudo-labelled rows (`axr train check`): each row's
prompt asked once for one answer token, P(yes) read from its log-probabilities as the scoring stage reads
it. The rows' labels are pseudo-labels (normal reference caption: no; pseudo-anomaly: yes), never anomaly
labels of real videos."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from axr.training.probe import dataset_columns


def agreement(backend, dataset: Path, chunk: int = 32, on_progress=None) -> dict:
    """{rows, answered, agreement, auc, p_yes_on_yes_rows, p_yes_on_no_rows, rows_per_s}."""
    from sklearn.metrics import roc_auc_score

    from axr.reasoning.backends import Sampling, system, user
    from axr.reasoning.scoring import yes_probability

    prompts, labels = dataset_columns(dataset, "prompt", "label")
    requests = [[system(p[0]["content"]), user(p[1]["content"])] for p in prompts]
    sampling = Sampling(max_tokens=1, top_logprobs=20)
    scores: list[float | None] = []
    started = time.perf_counter()
    for start in range(0, len(requests), chunk):
        answers = backend.generate(requests[start : start + chunk], sampling)
        scores += [None if a.error else yes_probability(a.top_logprobs) for a in answers]
        if on_progress:
            on_progress(len(scores), len(requests))
    seconds = time.perf_counter() - started
    answered = [k for k, score in enumerate(scores) if score is not None]
    p = np.asarray([scores[k] for k in answered], float)
    y = np.asarray([labels[k] for k in answered], float)
    return {
        "rows": len(requests),
        "answered": len(answered),
        "agreement": round(float(np.mean((p > 0.5) == (y == 1))), 4) if answered else None,
        "auc": round(float(roc_auc_score(y, p)), 4) if len(set(y.tolist())) == 2 else None,
        "p_yes_on_yes_rows": round(float(p[y == 1].mean()), 4) if (y == 1).any() else None,
        "p_yes_on_no_rows": round(float(p[y == 0].mean()), 4) if (y == 0).any() else None,
        "rows_per_s": round(len(requests) / seconds, 2) if seconds else None,
    }
