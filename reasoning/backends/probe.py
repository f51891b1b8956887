"""A linear probe as a backend: logistic regression on MiniLM sentence embeddings of a caption, answering the
scoring stage's one question ("Does this caption describe an anomaly?") with P(yes) as the first token's
log-probabilities, so `CaptionScorer`, `axr eval run` and the benches serve it as they serve a language
model. It is the cheap baseline a trained scorer must beat (`axr train probe` fits one). Any other request
is answered with an error, never with a guess.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from axr.reasoning.backends.base import Backend, BackendError, Completion, flatten_text

PROBE_FILE = "probe.json"
FORMAT = "axr-linear-probe/1"


def save_probe(out: Path, coef, intercept: float, facts: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "coef": [float(c) for c in coef], "intercept": float(intercept), **facts}
    (out / PROBE_FILE).write_text(json.dumps(data, indent=1))
    return out


class ProbeBackend(Backend):
    name = "probe"

    def __init__(self, model: str, **_):
        path = Path(model) / PROBE_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise BackendError(f"{path}: not a linear probe ({error}); fit one with `axr train probe`") from None
        if data.get("format") != FORMAT:
            raise BackendError(f"{path}: format {data.get('format')!r} is not {FORMAT}")
        from axr.reasoning.embedding import Embedder

        self.model = model
        self.coef, self.intercept = np.asarray(data["coef"], np.float32), data["intercept"]
        self.embedder = Embedder()

    def p_yes(self, captions: list[str]) -> np.ndarray:
        logits = self.embedder.encode(captions) @ self.coef + self.intercept
        return 1 / (1 + np.exp(-logits))

    def _complete(self, requests, sampling, schema, arrived=None) -> list[Completion]:
        from axr.reasoning.scoring import NO, YES, asked_caption

        started = time.perf_counter()
        captions = [asked_caption(flatten_text(r)[-1]["content"]) for r in requests]
        known = [c for c in captions if c is not None]
        scores = dict(zip(known, self.p_yes(known).tolist(), strict=True)) if known else {}
        seconds = (time.perf_counter() - started) / len(requests)
        out = []
        for caption in captions:
            if caption is None:
                out.append(Completion(error="the linear probe answers only the scoring stage's yes/no question"))
                continue
            p = min(max(scores[caption], 1e-9), 1 - 1e-9)
            out.append(
                Completion(
                    text=YES if p >= 0.5 else NO,
                    top_logprobs={YES: math.log(p), NO: math.log(1 - p)},
                    tokens_out=1,
                    latency_s=seconds,
                )
            )
        return out
