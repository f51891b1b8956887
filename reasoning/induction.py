"""Rule induction: normal reference observations -> a RuleBook, with structured output at every step.

AnomalyRuler's method, done as a tool:
1. n seeded batches of m references; per batch the model writes NORMAL rules (abstract rule, concrete
   examples, keywords), then, by contrast with them, ANOMALY rules. All batches go to the backend at once.
2. Aggregation in code, not by another model call: normalise texts, merge near-identical rules by MiniLM
   cosine similarity, count support (how many batches produced a rule), keep normal rules with enough
   support and anomaly rules by a stated policy.
3. Trigger keywords per anomaly rule: proposed by the model (one more structured call), merged with the
   rule's own, and checked against the normal references: a word common there cannot signal an anomaly.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from axr.reasoning.backends.base import Backend, BackendError, Sampling, user
from axr.reasoning.prompting import render, template_version
from axr.reasoning.schema import (
    InducedRules,
    KeywordProposal,
    Provenance,
    Rule,
    RuleBook,
    RuleSection,
)
from axr.reasoning.settings import InductionSettings
from axr.reasoning.triggers import lemmas

DOMAIN_SECTIONS = {
    "scene": ["human activity", "environment"],
    "object": ["appearance", "structure", "logic"],
}


@dataclass
class _Candidate:
    text: str
    examples: list[str]
    keywords: list[str]
    batches: set[int]


def seeded_batches(n_refs: int, config: InductionSettings) -> list[list[int]]:
    """n batches of m reference indices, reproducible from the seed (sampling without replacement per batch)."""
    rng = random.Random(config.seed)
    size = min(config.per_batch, n_refs)
    return [sorted(rng.sample(range(n_refs), size)) for _ in range(config.batches)]


def induce(
    backend: Backend,
    references: list[tuple[str, str]],
    config: InductionSettings,
    embedder,
    name: str = "induced",
    on_message=lambda message: None,
    on_progress=None,
) -> RuleBook:
    """references: (id, observation text) pairs of NORMAL samples. `on_progress(done, total)` counts the
    model's answers as they arrive (n normal batches, n contrasts, one keyword call)."""
    if not references:
        raise ValueError("induction needs at least one normal reference")
    sections = config.sections or DOMAIN_SECTIONS.get(config.domain, ["general"])
    batches = seeded_batches(len(references), config)
    answers, total = 0, 2 * len(batches) + 1

    def answered(_index, _completion) -> None:
        nonlocal answers
        answers += 1
        if on_progress:
            on_progress(answers, total)

    if on_progress:
        on_progress(0, total)
    sampling = Sampling(max_tokens=config.max_tokens, seed=config.seed, repetition_penalty=1.1)
    on_message(f"inducing normal rules: {len(batches)} batches x {len(batches[0])} references")
    normal_answers = _ask(
        backend,
        sampling,
        [
            render(
                "induce_normal",
                domain=config.domain,
                observations=[references[i][1] for i in batch],
                sections=sections,
                schema=InducedRules,
            )
            for batch in batches
        ],
        answered,
    )
    on_message("inducing anomaly rules by contrast")
    anomaly_answers = _ask(
        backend,
        sampling,
        [
            render(
                "induce_anomaly",
                domain=config.domain,
                sections=sections,
                schema=InducedRules,
                normal_rules=[{"name": s, "rules": rules} for s, rules in _texts_by_section(answer, sections).items()],
            )
            for answer in normal_answers
        ],
        answered,
    )
    book_sections = []
    for index, section in enumerate(sections):
        normal = _aggregate(normal_answers, section, sections, embedder, config.dedup_similarity)
        anomaly = _aggregate(anomaly_answers, section, sections, embedder, config.dedup_similarity)
        needed = math.ceil(config.normal_min_support * len(batches))
        normal = [c for c in normal if len(c.batches) >= needed]
        if config.anomaly_policy == "supported":
            anomaly = [c for c in anomaly if len(c.batches) >= needed]
        prefix = _section_prefix(section, index)
        book_sections.append(
            RuleSection(
                name=section,
                normal=[_rule(f"n-{prefix}-{k}", c) for k, c in enumerate(normal, 1)],
                anomaly=[_rule(f"a-{prefix}-{k}", c) for k, c in enumerate(anomaly, 1)],
            )
        )
    book = RuleBook(
        name=name,
        domain=config.domain,
        sections=book_sections,
        provenance=Provenance(
            model=backend.model,
            backend=backend.name,
            prompt_version=",".join(template_version(t) for t in ("induce_normal", "induce_anomaly", "aggregate")),
            reference_ids=[references[i][0] for i in sorted({i for b in batches for i in b})],
            seeds=[config.seed],
            induction=config,
        ),
    )
    if not book.rules("anomaly"):
        raise InductionError(
            f"induction produced no anomaly rules ({len(book.rules('normal'))} normal rules; the model's anomaly "
            "answers were empty or unparsable)",
            book,
        )
    on_message("proposing and checking trigger keywords")
    book = derive_keywords(book, backend, sampling, [text for _, text in references], config, answered)
    book.provenance.cost = backend.usage  # calls and tokens the induction took
    return book


class InductionError(ValueError):
    """Induction found no anomaly rules; `partial` holds what it did induce (the normal rules), for a person."""

    def __init__(self, message: str, partial: RuleBook):
        super().__init__(message)
        self.partial = partial


def derive_keywords(
    book: RuleBook, backend: Backend, sampling: Sampling, normal_texts: list[str], config, on_answer=None
) -> RuleBook:
    """Keywords per anomaly rule: the model's proposal plus the rule's own, minus words common in normal texts."""
    anomaly = book.rules("anomaly")
    prompt = render(
        "aggregate",
        domain=book.domain,
        max_keywords=config.max_keywords,
        schema=KeywordProposal,
        rules=[{"id": r.id, "text": r.text, "examples": r.examples} for r in anomaly],
    )
    [completion] = _answered(backend.generate([[user(prompt)]], sampling, KeywordProposal, on_answer))
    proposed = {r.id: r.keywords for r in completion.parsed.rules} if completion.parsed else {}
    share = Counter(w for text in normal_texts for w in set(lemmas(text)))
    n = max(len(normal_texts), 1)
    for rule in anomaly:
        words = [w.strip().lower() for w in [*proposed.get(rule.id, []), *rule.keywords] if w.strip()]
        rule.keywords = [
            w for w in dict.fromkeys(words) if all(share[x] / n < config.max_normal_share for x in lemmas(w))
        ]
    return book


def _ask(backend: Backend, sampling: Sampling, prompts: list[str], on_answer=None) -> list[InducedRules]:
    completions = _answered(backend.generate([[user(p)] for p in prompts], sampling, InducedRules, on_answer))
    return [c.parsed if c.parsed is not None else InducedRules.model_construct(sections=[]) for c in completions]


def _answered(completions: list) -> list:
    """The completions, unless a request got no answer at all (server down, timeout): that is not an empty
    answer, so induction stops with the request's own error instead of inducing from nothing."""
    failed = [c.error for c in completions if c.error]
    if failed:
        more = f" (and {len(failed) - 1} more requests)" if len(failed) > 1 else ""
        raise BackendError(f"induction stopped: {failed[0]}{more}")
    return completions


def _texts_by_section(answer: InducedRules, sections: list[str]) -> dict[str, list[str]]:
    out = {s: [] for s in sections}
    for position, induced in enumerate(answer.sections):
        target = _match_section(induced.name, position, sections)
        if target:
            out[target].extend(r.text for r in induced.rules)
    return out


def _match_section(name: str, position: int, sections: list[str]) -> str | None:
    """A model's section name mapped onto the requested ones: by name, else by position."""
    lowered = name.lower()
    for section in sections:
        if section.lower() in lowered or lowered in section.lower():
            return section
    return sections[position] if position < len(sections) else None


def _aggregate(answers: list[InducedRules], section: str, sections, embedder, threshold: float) -> list[_Candidate]:
    """Merge near-identical rules across batches (greedy, most supported first); support = distinct batches."""
    raw: list[_Candidate] = []
    for batch, answer in enumerate(answers):
        for position, induced in enumerate(answer.sections):
            if _match_section(induced.name, position, sections) != section:
                continue
            for rule in induced.rules:
                text = _normalise(rule.text)
                if text:
                    raw.append(_Candidate(text, rule.examples, rule.keywords, {batch}))
    if not raw:
        return []
    vectors = embedder.encode([c.text for c in raw])
    merged: list[_Candidate] = []
    centres: list[np.ndarray] = []
    for candidate, vector in zip(raw, vectors, strict=True):
        similarities = [float(vector @ c) for c in centres]
        best = int(np.argmax(similarities)) if similarities else -1
        if best >= 0 and similarities[best] >= threshold:
            kept = merged[best]
            kept.batches |= candidate.batches
            kept.examples = list(dict.fromkeys([*kept.examples, *candidate.examples]))[:4]
            kept.keywords = list(dict.fromkeys([*kept.keywords, *candidate.keywords]))
        else:
            merged.append(candidate)
            centres.append(vector)
    return sorted(merged, key=lambda c: (-len(c.batches), c.text))


def _normalise(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    return text[:1].upper() + text[1:] if text else ""


def _section_prefix(section: str, index: int) -> str:
    letters = "".join(word[0] for word in re.findall(r"[a-z]+", section.lower()))
    return letters or str(index)


def _rule(rule_id: str, candidate: _Candidate) -> Rule:
    return Rule(
        id=rule_id,
        text=candidate.text,
        examples=candidate.examples[:4],
        keywords=candidate.keywords,
        support=len(candidate.batches),
    )
