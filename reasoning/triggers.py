"""The cheap trigger stage: score observations against a rule book without generating text.

Two signals, both derived per rule book and per set of normal references (never a hard-coded list):
- keywords: each anomaly rule's trigger words (its `keywords`, else the content words of its text and
  examples), lemmatised, and dropped when they are common in the normal references ("walking" describes
  normal scenes, so it cannot signal an anomaly); matched on whole lemmas, so "lying" never matches "flying";
- novelty: how far the observation's least familiar sentence is from every sentence of the normal
  references (MiniLM cosine), so an anomaly no rule names still raises the score.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from axr.reasoning.schema import RuleBook

STOPWORDS = set(
    """a an the and or nor of in on at to with without from by for as such any other than is are was were be being
    been it its their his her this that these those there here into onto up down near around very when while not no
    can may might could should would will some using use used etc also like e.g i.e one two image images scene
    person people man woman something thing things""".split()
)
_WORD = re.compile(r"[a-z]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def lemmas(text: str) -> list[str]:
    import simplemma

    return [simplemma.lemmatize(w, lang="en") for w in _WORD.findall(text.lower())]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()] or [text.strip()]


@dataclass
class TriggerResult:
    score: float
    keyword_hits: dict[str, list[str]] = field(default_factory=dict)  # rule id -> matched lemmas
    novelty: float = 0.0
    novel_sentence: str = ""


class TriggerStage:
    """Keyword and novelty scores for observations, from a rule book and normal reference observations."""

    def __init__(
        self,
        rulebook: RuleBook,
        normal_references: list[str],
        embedder=None,
        max_normal_share: float = 0.05,
        keyword_weight: float = 1.0,
    ):
        if not rulebook.rules("anomaly", enabled_only=True):
            raise ValueError(f"rule book {rulebook.name!r} has no enabled anomaly rules")
        self.rulebook, self.embedder, self.keyword_weight = rulebook, embedder, keyword_weight
        reference_lemmas = [set(lemmas(text)) for text in normal_references]
        share = Counter(w for words in reference_lemmas for w in words)
        n = max(len(reference_lemmas), 1)
        self.max_normal_share = max_normal_share
        self._reference_share = {w: k / n for w, k in share.items()}
        self.dropped: set[str] = set()
        self.keywords: dict[str, set[str]] = {}
        for rule in rulebook.rules("anomaly", enabled_only=True):
            words = {w for w in lemmas(" ".join(rule.keywords or [rule.text, *rule.examples])) if _content(w)}
            common = {w for w in words if share[w] / n >= max_normal_share}
            self.dropped |= common
            self.keywords[rule.id] = words - common
        self._reference_vectors = None
        if embedder is not None and normal_references:
            reference_sentences = sorted({s for text in normal_references for s in sentences(text)})
            self._reference_vectors = embedder.encode(reference_sentences)

    def add_synonyms(self, observations: list[str], threshold: float = 0.75, min_count: int = 3) -> dict[str, str]:
        """Extend each rule's keywords with words of the observations that MiniLM puts near one of them
        (car -> vehicle, bicyclist -> bicycle), unless they are common in the normal references. Uses no
        labels. Returns {new word: the keyword it was matched to}."""
        if self.embedder is None:
            return {}
        counts = Counter(w for text in observations for w in set(lemmas(text)))
        vocabulary = [w for w, k in counts.items() if k >= min_count and _content(w) and w not in self.dropped]
        keywords = sorted({w for words in self.keywords.values() for w in words})
        if not vocabulary or not keywords:
            return {}
        similarity = self.embedder.encode(vocabulary) @ self.embedder.encode(keywords).T
        added = {}
        for i, j in zip(*np.nonzero(similarity >= threshold), strict=True):
            word, keyword = vocabulary[i], keywords[j]
            if word != keyword and self._reference_share.get(word, 0.0) < self.max_normal_share:
                added[word] = keyword
                for words in self.keywords.values():
                    if keyword in words:
                        words.add(word)
        return added

    def keyword_hits(self, text: str) -> dict[str, list[str]]:
        words = set(lemmas(text))
        return {rule_id: sorted(words & kws) for rule_id, kws in self.keywords.items() if words & kws}

    def score(self, observations: list[str]) -> list[TriggerResult]:
        """Score = keyword_weight x (any anomaly keyword) + novelty in [0, 1]."""
        novelty = self._novelty(observations)
        results = []
        for text, (nov, sentence) in zip(observations, novelty, strict=True):
            hits = self.keyword_hits(text)
            score = self.keyword_weight * float(bool(hits)) + nov
            results.append(TriggerResult(score, hits, nov, sentence))
        return results

    def _novelty(self, observations: list[str]) -> list[tuple[float, str]]:
        if self._reference_vectors is None:
            return [(0.0, "")] * len(observations)
        per_text = [sentences(t) for t in observations]
        unique = sorted({s for group in per_text for s in group})
        vectors = self.embedder.encode(unique)
        distance = 1.0 - (vectors @ self._reference_vectors.T).max(axis=1)
        by_sentence = dict(zip(unique, np.clip(distance, 0.0, 1.0), strict=True))
        out = []
        for group in per_text:
            worst = max(group, key=by_sentence.__getitem__)
            out.append((float(by_sentence[worst]), worst))
        return out


def _content(word: str) -> bool:
    return len(word) > 2 and word not in STOPWORDS
