"""Deduction: RuleBook + observations -> Verdicts, after the cheap trigger stage.

The model re-check reads an observation with the rule book and answers with a structured VerdictAnswer.
Which observations it reads is a stated policy: `none`, `all`, `positives` (the trigger stage flagged
them), or `uncertain` (their smoothed score lies within a band around the threshold). Its label moves a frame
to its side of the threshold (`merge_recheck`), so it can clear a false alarm as well as raise one, while
keeping the trigger's order wherever the model has nothing to say. Every request starts with the same
rule-book system message, so vLLM's prefix cache computes it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from axr.reasoning.backends.base import Backend, Sampling, system, user
from axr.reasoning.prompting import render, template_version
from axr.reasoning.schema import RuleBook, Verdict, VerdictAnswer
from axr.reasoning.settings import POLICIES


def select_for_recheck(policy: str, smoothed, threshold: float, band: float) -> np.ndarray:
    """Indices of the observations the model re-checks under `policy`."""
    smoothed = np.asarray(smoothed, dtype=float)
    if policy == "none":
        return np.array([], dtype=int)
    if policy == "all":
        return np.arange(len(smoothed))
    if policy == "positives":
        return np.flatnonzero(smoothed > threshold)
    if policy == "uncertain":
        return np.flatnonzero(np.abs(smoothed - threshold) <= band)
    raise ValueError(f"unknown re-check policy {policy!r}; choose one of {', '.join(POLICIES)}")


def recheck(
    backend: Backend,
    rulebook: RuleBook,
    observations: list[tuple[str, str]],
    sampling: Sampling | None = None,
    on_verdict: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Verdicts for (sample_id, observation text) pairs; an answer that fails validation is `unparsed`.
    `on_verdict` gets each verdict as its answer arrives (a slow model's answers can be journaled one by one)."""
    sampling = sampling or Sampling(max_tokens=400, repetition_penalty=1.1)
    requests = recheck_requests(rulebook, observations)
    known = rulebook.rule_ids()

    def verdict_of(i: int, completion) -> Verdict:
        meta = {
            **backend.describe(),
            "prompt_version": template_version("deduce_system"),
            **completion.cost().model_dump(),
            "latency_s": round(completion.latency_s, 4),
            "repaired": completion.repaired,
            "tries": completion.tries,
        }
        if completion.error:  # no answer at all (server down, timeout): not the model's verdict
            meta["request_error"] = completion.error
        return to_verdict(observations[i][0], completion, known, meta)

    def arrived(i: int, completion) -> None:
        on_verdict(verdict_of(i, completion))

    completions = backend.generate(requests, sampling, VerdictAnswer, arrived if on_verdict else None)
    return [verdict_of(i, completion) for i, completion in enumerate(completions)]


def recheck_requests(rulebook: RuleBook, observations: list[tuple[str, str]]) -> list[list[dict]]:
    """The re-check's requests: one shared system prompt with the rule book (a cached prefix on a server),
    then each observation; training rows for a caption reasoner use exactly these."""
    prefix = system(render("deduce_system", rulebook=rulebook, schema=VerdictAnswer))
    return [[prefix, user(render("deduce_user", observation=text, sample_id=sid))] for sid, text in observations]


def to_verdict(sample_id: str, completion, known_rules: set[str], meta: dict) -> Verdict:
    """A completion as a Verdict: `unparsed` with the raw text when it failed validation; cited rule ids that
    are not in the book are dropped (and recorded), since they are not evidence."""
    if completion.parsed is None:
        return Verdict.unparsed(completion.text, completion.parse_error or "no answer", sample_id=sample_id, **meta)
    answer = completion.parsed.model_dump()
    unknown = [r for r in answer["rules_matched"] if r not in known_rules]
    if unknown:
        answer["rules_matched"] = [r for r in answer["rules_matched"] if r in known_rules]
        meta = {**meta, "unknown_rules_dropped": unknown}
    return Verdict(**answer, sample_id=sample_id, meta=meta)


def merge_recheck(
    scores, chosen, verdicts: list[Verdict], threshold: float, band: float, min_confidence: float = 0.5
) -> np.ndarray:
    """Scores after the re-check: the frames the model calls normal end below the threshold, those it calls
    anomalous above it, and nothing else moves.

    Each side is an increasing affine map of that group's own scores, so the trigger's order within a group
    is kept, and a group already on its side of the threshold does not move. The lower side spans
    [min(group, threshold - band), threshold), the upper (threshold, max(group, threshold + band)]. Under the
    `uncertain` policy every chosen score lies within the band, so a model whose answers carry no information
    (the same label for every frame) leaves the ranking, and the AUC, exactly as they were; the model can
    only reorder frames across the threshold where its labels differ. Unparsed answers and answers below
    `min_confidence` leave their frame alone (small models are often sure of nothing).
    """
    out = np.array(scores, dtype=float)
    chosen = np.asarray(chosen, dtype=int)
    by_label = {"normal": [], "anomalous": []}
    for index, verdict in zip(chosen, verdicts, strict=True):
        if verdict.verdict in by_label and (verdict.confidence is None or verdict.confidence >= min_confidence):
            by_label[verdict.verdict].append(index)
    gap = max(band, 1e-6) * 1e-3  # keeps a moved frame strictly off the threshold
    for label, indices in by_label.items():
        if not indices:
            continue
        group = out[indices]
        if label == "normal":
            low, high = min(group.min(), threshold - band), threshold - gap
            wrong_side = group.max() >= threshold
        else:
            low, high = threshold + gap, max(group.max(), threshold + band)
            wrong_side = group.min() <= threshold
        if wrong_side:
            out[indices] = _rescale(group, low, high)
    return out


def _rescale(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Increasing affine map of `values` onto [low, high] (all to the middle when they are all equal)."""
    spread = values.max() - values.min()
    if spread == 0:
        return np.full_like(values, (low + high) / 2)
    return low + (values - values.min()) * (high - low) / spread


def trigger_verdict(
    sample_id: str, result, smoothed: float, threshold: float, scale: float, book: RuleBook
) -> Verdict:
    """A Verdict from the trigger stage alone: the rules whose keywords matched, the words, the novel sentence."""
    texts = {r.id: r.text for r in book.rules()}
    anomalous = smoothed > threshold
    broken = sorted(result.keyword_hits)
    evidence = [f"{', '.join(words)} ({rule_id})" for rule_id, words in sorted(result.keyword_hits.items())]
    if result.novel_sentence and result.novelty > 0:
        evidence.append(f"least familiar sentence (novelty {result.novelty:.2f}): {result.novel_sentence}"[:300])
    why = "; ".join(f"[{r}] {texts[r]}" for r in broken) if broken else "no anomaly rule's keywords matched"
    return Verdict(
        sample_id=sample_id,
        verdict="anomalous" if anomalous else "normal",
        score=float(min(max(smoothed / scale, 0.0), 1.0)),
        rules_matched=broken if anomalous else [],
        evidence=evidence[:5],
        rationale={
            "what": f"trigger words {', '.join(w for ws in result.keyword_hits.values() for w in ws)}"
            if broken
            else "",
            "why": why[:400],
            "how": f"smoothed trigger score {smoothed:.2f} vs threshold {threshold:.2f}",
        },
        confidence=float(min(abs(smoothed - threshold) / scale + 0.5, 1.0)),
        meta={"stage": "trigger", "trigger_score": round(result.score, 4), "threshold": round(threshold, 4)},
    )


@dataclass
class DirectItem:
    """One query for direct mode: its image (or a video's frames, in order) and its normal references."""

    sample_id: str
    images: list
    references: list = field(default_factory=list)
    hint: str | None = None  # e.g. the visual gate's "the most unusual region is the top left"


def direct_question(n_query: int) -> str:
    """The user turn of direct mode, after the images (shared with the training data, which must match it)."""
    return "Judge the last image." if n_query == 1 else f"Judge the last {n_query} frames."


def direct_verdicts(
    backend: Backend,
    items: list[DirectItem],
    rulebook: RuleBook | None,
    domain: str = "object",
    sampling: Sampling | None = None,
) -> list[Verdict]:
    """Direct VLM mode: reference images, then the query image(s), and the rule book -> a Verdict, no caption.

    The system prompt depends only on the counts of images, so items alike share it (and the prefix cache).
    """
    requests = [direct_request(item, rulebook, domain) for item in items]
    completions = backend.generate(requests, sampling or Sampling(max_tokens=512), VerdictAnswer)
    known = rulebook.rule_ids() if rulebook else set()
    return [
        direct_verdict(item.sample_id, len(item.references), completion, known, backend.describe())
        for item, completion in zip(items, completions, strict=True)
    ]


def direct_request(item: DirectItem, rulebook: RuleBook | None, domain: str = "object") -> list[dict]:
    """One direct-mode request: the system prompt with the rule book, then the references and the query."""
    prompt = render(
        "direct_system",
        domain=domain,
        n_references=len(item.references),
        n_query=len(item.images),
        rulebook=rulebook,
        hint=item.hint,
        schema=VerdictAnswer,
    )
    return [system(prompt), user(direct_question(len(item.images)), [*item.references, *item.images])]


def direct_verdict(sample_id: str, references: int, completion, known_rules: set[str], described: dict) -> Verdict:
    """A direct-mode answer as a Verdict, with how it was made (and how many references it saw) in its meta."""
    meta = {
        **described,
        "stage": "direct",
        "prompt_version": template_version("direct_system"),
        **completion.cost().model_dump(),
        "references": references,
        "repaired": completion.repaired,
        "tries": completion.tries,
    }
    if completion.error:
        meta["request_error"] = completion.error
    return to_verdict(sample_id, completion, known_rules, meta)


def smooth_frame_verdicts(verdicts: list[Verdict], videos: list[list[int]], window: int) -> list[Verdict]:
    """Direct-mode frames of one video: scores smoothed over a centred window (unparsed frames left out),
    the label re-derived at 0.5, the frame's own score kept in meta."""
    from axr.reasoning.smoothing import centred_mean

    for indices in videos:
        parsed = [i for i in indices if verdicts[i].score is not None]
        if len(parsed) < 2:
            continue
        smoothed = centred_mean([verdicts[i].score for i in parsed], window)
        for i, score in zip(parsed, smoothed, strict=True):
            verdict = verdicts[i]
            verdict.meta["frame_score"] = verdict.score
            verdict.score = float(score)
            verdict.verdict = "anomalous" if score > 0.5 else "normal"
    return verdicts
