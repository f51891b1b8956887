"""One-token scoring: how anomalous a model finds an observation, read from the log-probabilities of its
first answer token to a yes/no question (`Sampling(max_tokens=1, top_logprobs=N)`), not from generated
text. One forward pass and one answer token per distinct observation.
"""

from __future__ import annotations

import hashlib
import math
import re
import time

import numpy as np

YES, NO = "yes", "no"
QUESTION = re.compile(r"Caption: (.*)\nDoes this caption describe an anomaly\?", re.DOTALL)  # score_user's words


def yes_probability(top_logprobs: dict[str, float] | None) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives, each token compared after stripping
    spaces and case ("Yes", " yes", "YES" all count as yes); None when neither answer is among them (a
    request to ask again, or with more alternatives, never a score)."""
    if not top_logprobs:
        return None
    mass = {YES: 0.0, NO: 0.0}
    for token, logprob in top_logprobs.items():
        word = token.strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass[YES] + mass[NO]
    return mass[YES] / total if total > 0 else None


def asked_caption(question: str) -> str | None:
    """The caption a scoring question (`score_user`) asks about, or None for any other text."""
    match = QUESTION.search(question)
    return match.group(1) if match else None


def normalise(caption: str) -> str:
    """The text a caption is scored by: spaces collapsed, trimmed (a repeated caption is scored once)."""
    return " ".join(caption.split())


class CaptionScorer:
    """P(yes) for each distinct caption, one forward pass and one answer token each, cached in a journal
    keyed by sha256(model, prompt templates, rule book, scene summary, caption): a repeat, a rerun or a
    resumed run asks only what has no score yet. A request that got no answer, or whose first token was
    neither yes nor no, is not journaled and never given a score: the next run asks it again (this one asks
    each caption once)."""

    def __init__(self, backend, rulebook, journal_path, normal_summary: str = "", top_logprobs: int = 20):
        from axr.reasoning.journal import Journal
        from axr.reasoning.prompting import render, template_version

        self.backend, self.top_logprobs = backend, top_logprobs
        self.prefix = render("score_system", rulebook=rulebook, normal_summary=normal_summary)
        version = [backend.model, template_version("score_system"), template_version("score_user"), self.prefix]
        self.version = hashlib.sha256("\x1f".join(version).encode()).hexdigest()  # the prompt, once per run
        self.journal = Journal(journal_path, key="key")
        self.asked = self.unanswered = 0
        self.tried: set[str] = set()  # keys asked this run: one without an answer waits for the next run

    def key(self, caption: str) -> str:
        return hashlib.sha256(f"{self.version}\x1f{normalise(caption)}".encode()).hexdigest()

    def score(self, captions: list[str], chunk: int = 64, on_progress=None) -> dict[str, float]:
        """{caption: P(yes)} for the captions that have a score (asked now or before)."""
        from axr.reasoning.backends import Sampling, system, user
        from axr.reasoning.prompting import render

        keys = {c: self.key(c) for c in dict.fromkeys(normalise(c) for c in captions) if c}  # "": no caption
        todo = [c for c, key in keys.items() if key not in self.journal and key not in self.tried]
        self.tried.update(keys[c] for c in todo)
        sampling = Sampling(max_tokens=1, top_logprobs=self.top_logprobs)
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            requests = [[system(self.prefix), user(render("score_user", caption=c))] for c in part]
            started = time.perf_counter()
            answers = self.backend.generate(requests, sampling)
            seconds = (time.perf_counter() - started) / len(part)  # the chunk's wall time, shared by its captions
            self.asked += len(part)
            fresh = []
            for caption, answer in zip(part, answers, strict=True):
                p = None if answer.error else yes_probability(answer.top_logprobs)
                if p is None:
                    self.unanswered += 1
                    continue
                fresh.append(
                    {
                        "key": keys[caption],
                        "caption": caption,
                        "p_yes": p,
                        "tokens_in": answer.tokens_in,
                        "tokens_out": answer.tokens_out,
                        "seconds": round(seconds, 4),
                    }
                )
            self.journal.append(fresh)
            if on_progress:
                on_progress(min(start + chunk, len(todo)), len(todo))
        return self.known(captions)

    def known(self, captions: list[str]) -> dict[str, float]:
        """{caption: P(yes)} for the captions already scored, asking nothing."""
        scores = {}
        for caption in captions:
            record = self.journal.records.get(self.key(caption))
            if record is not None:
                scores[caption] = record["p_yes"]
        return scores

    def cost(self, captions: list[str]) -> dict:
        """What scoring these captions cost, from the journal (whether asked now or by an earlier run):
        distinct captions scored, prompt and completion tokens, and wall seconds per distinct caption."""
        records = [self.journal.records[k] for k in {self.key(c) for c in captions} if k in self.journal]
        n = len(records)
        return {
            "distinct_scored": n,
            "tokens_in": sum(r.get("tokens_in", 0) for r in records),
            "tokens_out": sum(r.get("tokens_out", 1) for r in records),
            "seconds_per_caption": round(sum(r.get("seconds", 0.0) for r in records) / n, 4) if n else None,
        }


TIE_BREAK = 1e-3  # at most this much of a rank comes from the value itself


def _tie_break(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Under TIE_BREAK, increasing with the value and fixed by the (sorted) references alone, so that values
    past the references' range (where anomalies lie) keep their order instead of all tying."""
    scale = (reference[-1] - reference[0]) or 1.0
    return TIE_BREAK * np.tanh((values - reference[0]) / scale)


def rank_against(values, reference) -> np.ndarray:
    """Each value's mid-rank among `reference` (the share of it below the value, plus half the share equal to
    it: the empirical CDF over the references' normal frames), so two scores on different scales become
    comparable without any anomaly label; plus a tie-break (`_tie_break`)."""
    reference = np.sort(np.asarray(reference, dtype=float))
    values = np.asarray(values, dtype=float)
    if not len(reference):
        return values
    below, upto = np.searchsorted(reference, values, side="left"), np.searchsorted(reference, values, side="right")
    return (below + upto) / (2 * len(reference)) + _tie_break(values, reference)


def surprise_against(values, reference) -> np.ndarray:
    """-log of each value's tail probability among `reference`: (references at or above it + 1) / (n + 1),
    0 below them all, log(n + 1) past them all; plus a tie-break (`_tie_break`). Unlike a rank, it grows
    with how far into the references' tail a value lies, so a signal that is sure of a frame outweighs one
    that finds it merely unusual."""
    reference = np.sort(np.asarray(reference, dtype=float))
    values = np.asarray(values, dtype=float)
    if not len(reference):
        return values
    at_or_above = len(reference) - np.searchsorted(reference, values, side="left")
    return -np.log((at_or_above + 1) / (len(reference) + 1)) + _tie_break(values, reference)


FUSIONS = {"fisher": surprise_against, "rank": rank_against}


def fuse(trigger, model, reference_trigger, reference_model, weight: float = 0.5, fusion: str = "fisher"):
    """One frame score from the trigger's and the model's, each read against the same signal on the normal
    references, then (1 - weight) x trigger part + weight x model part. `fisher` (Fisher's method): each part
    is -log of the signal's tail probability among the references, so the sum is -log of their weighted
    geometric mean; `rank`: each part is the mid-rank. Where the model has no score (NaN) the trigger's
    part stands for it. Needs no anomaly label."""
    part = FUSIONS[fusion]
    model = np.asarray(model, dtype=float)
    trigger_part = part(trigger, reference_trigger)
    model_part = np.where(np.isnan(model), trigger_part, part(np.nan_to_num(model), reference_model))
    return (1 - weight) * trigger_part + weight * model_part


def largest_fused(reference_trigger, reference_model, weight: float, fusion: str) -> float:
    """The highest fused score (a frame past every reference on both signals): 1 for ranks,
    (1 - weight) log(n_trigger + 1) + weight log(n_model + 1) for Fisher's method; plus the tie-break."""
    if fusion == "rank":
        return 1.0 + TIE_BREAK
    return (1 - weight) * np.log(len(reference_trigger) + 1) + weight * np.log(len(reference_model) + 1) + TIE_BREAK
