"""The cheap trigger stage: score observations against a rule book without generating text.

Two signals, both derived per rule book and per set of normal references (never a hard-coded list):
- keywords: each anomaly rule's trigger words (its `keywords`, else the content words of its text and
  examples, less the words of its normal rules), lemmatised, each weighted by how rare it is in the normal
  references and how much more often the observations use it ("walking" describes normal scenes, so it
  signals little; see TriggerSettings.keywords); matched on whole lemmas, so "lying" never matches "flying";
- novelty: how far the observation's least familiar sentence is from every sentence of the normal
  references (MiniLM cosine), so an anomaly no rule names still raises the score.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from axr.reasoning.schema import RuleBook
from axr.reasoning.smoothing import on_grid

STOPWORDS = set(
    """a an the and or nor of in on at to with without from by for as such any other than is are was were be being
    been it its their his her this that these those there here into onto up down near around very when while not no
    can may might could should would will some using use used etc also like e.g i.e one two image images scene
    person people man woman something thing things""".split()
)
_WORD = re.compile(r"[a-z]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def lemmas(text: str) -> list[str]:
    return [_lemma(w) for w in _WORD.findall(text.lower())]


@functools.lru_cache(maxsize=1 << 16)
def _lemma(word: str) -> str:
    import simplemma

    return simplemma.lemmatize(word, lang="en")


@functools.lru_cache(maxsize=1 << 16)
def lemma_set(text: str) -> frozenset[str]:
    """The set of a text's lemmas, cached: consecutive frames of a video repeat their captions."""
    return frozenset(lemmas(text))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()] or [text.strip()]


NAMED_WEIGHT = 0.5  # a keyword this strong is named as a broken rule (rarity: in under max_normal_share)
_CLAUSE = re.compile(r"[,;:]\s+|\s+(?:and|while|but|whereas)\s+")
LONG_SENTENCE = 12  # words: a shorter sentence is one clause


def clauses(text: str, min_words: int = 3) -> list[str]:
    """The sentences, a long one cut at commas, semicolons and conjunctions into parts of at least `min_words`
    words (a shorter part joins the one before it): one unusual clause in a paragraph of usual ones stands out."""
    out = []
    for sentence in sentences(text):
        if len(sentence.split()) <= LONG_SENTENCE:
            out.append(sentence)
            continue
        parts: list[str] = []
        for part in _CLAUSE.split(sentence):
            if parts and len(part.split()) < min_words:
                parts[-1] += " " + part
            elif part.strip():
                parts.append(part.strip())
        out.extend(parts or [sentence])
    return out


@dataclass
class TriggerResult:
    score: float
    keyword_hits: dict[str, list[str]] = field(default_factory=dict)  # rule id -> matched lemmas
    novelty: float = 0.0
    novel_sentence: str = ""


class TriggerStage:
    """Keyword and novelty scores for observations, from a rule book and normal reference observations."""

    def __init__(self, rulebook: RuleBook, normal_references: list[str], embedder=None, settings=None):
        from axr.reasoning.settings import TriggerSettings

        if not rulebook.rules("anomaly", enabled_only=True):
            raise ValueError(f"rule book {rulebook.name!r} has no enabled anomaly rules")
        self.rulebook, self.embedder = rulebook, embedder
        self.settings = settings or TriggerSettings()
        self._reference_share = _shares(normal_references)
        self._observed_share: dict[str, float] = {}
        normal_words = set()
        if self.settings.exclude_normal_rule_words:  # the book itself says these describe normal scenes
            normal_words = {w for rule in rulebook.rules("normal", enabled_only=True) for w in _rule_words(rule)}
        self.rule_words = {r.id: _rule_words(r) - normal_words for r in rulebook.rules("anomaly", enabled_only=True)}
        self.keywords: dict[str, set[str]] = {}
        self.weights: dict[str, float] = {}  # keyword -> the evidence one match gives, in (0, 1]
        self._weigh()
        self._reference_vectors = None
        if embedder is not None and normal_references:
            reference_units = sorted({u for text in normal_references for u in self._units(text)})
            self._reference_vectors = embedder.encode(reference_units)

    def _weigh(self) -> None:
        self.weights = {w: self.weight(w) for words in self.rule_words.values() for w in words}
        self.keywords = {rule: {w for w in words if self.weights[w] > 0} for rule, words in self.rule_words.items()}
        self.dropped = {w for w, weight in self.weights.items() if weight == 0}

    def weight(self, word: str) -> float:
        """The evidence a match of `word` gives (see TriggerSettings.keywords): its rarity in the normal
        references, 1 / (1 + share / max_normal_share), or with `adaptive` the larger of that and its excess in
        the observations, 1 - reference share / observed share (the share of its uses that normal scenes do not
        explain; no labels read); with `drop`, 1 below max_normal_share and 0 from it."""
        share, limit = self._reference_share.get(word, 0.0), self.settings.max_normal_share
        if self.settings.keywords == "drop":
            return float(share < limit)
        rarity = 1.0 / (1.0 + share / limit)
        observed = self._observed_share.get(word, 0.0)
        if self.settings.keywords == "rarity" or observed == 0:
            return rarity
        return max(rarity, 1.0 - share / observed)

    def observe(self, observations: list[str]) -> None:
        """Weigh the keywords again with the observations' vocabulary (the `adaptive` setting reads it)."""
        self._observed_share = _shares(observations)
        self._weigh()

    def add_synonyms(self, observations: list[str], threshold: float = 0.75, min_count: int = 3) -> dict[str, str]:
        """Extend each rule's keywords with words of the observations that MiniLM puts near one of them
        (car -> vehicle, bicyclist -> bicycle), each weighted like any keyword. Uses no labels. Returns
        {new word: the keyword it was matched to}."""
        if self.embedder is None:
            return {}
        counts = Counter(w for text in observations for w in lemma_set(text))
        vocabulary = [w for w, k in counts.items() if k >= min_count and _content(w) and w not in self.dropped]
        keywords = sorted({w for words in self.keywords.values() for w in words})
        if not vocabulary or not keywords:
            return {}
        similarity = self.embedder.encode(vocabulary) @ self.embedder.encode(keywords).T
        added = {}
        for i, j in zip(*np.nonzero(similarity >= threshold), strict=True):
            word, keyword = vocabulary[i], keywords[j]
            if word != keyword and self.weight(word) > 0:
                added[word] = keyword
                for words in self.rule_words.values():
                    if keyword in words:
                        words.add(word)
        self._weigh()
        return added

    def keyword_hits(self, text: str, min_weight: float = NAMED_WEIGHT) -> dict[str, list[str]]:
        """Rule id -> the matched keywords weighing at least `min_weight` (by default those a verdict names: a
        word common in normal scenes adds a little to the score but breaks no rule by itself)."""
        words = lemma_set(text)
        return self._at_least({rule: sorted(words & kws) for rule, kws in self.keywords.items()}, min_weight)

    def score(self, observations: list[str]) -> list[TriggerResult]:
        """Score = keyword_weight x (the largest weight of a matched keyword) + novelty in [0, 1]."""
        captioned = [t for t in observations if t.strip()]
        novelty = dict(zip(captioned, self._novelty(captioned), strict=True))
        results = []
        for text in observations:
            if not text.strip():  # no caption: no evidence either way (the detector leaves the frame out)
                results.append(TriggerResult(0.0, {}, 0.0, ""))
                continue
            nov, sentence = novelty[text]
            matched = self.keyword_hits(text, min_weight=0.0)
            evidence = max((self.weights[w] for words in matched.values() for w in words), default=0.0)
            score = float(on_grid(self.settings.keyword_weight * evidence + nov))
            results.append(TriggerResult(score, self._at_least(matched, NAMED_WEIGHT), nov, sentence))
        return results

    def _at_least(self, hits: dict[str, list[str]], min_weight: float) -> dict[str, list[str]]:
        kept = {rule: [w for w in words if self.weights[w] >= min_weight] for rule, words in hits.items()}
        return {rule: words for rule, words in kept.items() if words}

    def _units(self, text: str) -> list[str]:
        return clauses(text) if self.settings.novelty_unit == "clause" else sentences(text)

    def _novelty(self, observations: list[str]) -> list[tuple[float, str]]:
        if self._reference_vectors is None:
            return [(0.0, "")] * len(observations)
        per_text = [self._units(t) for t in observations]
        unique = sorted({s for group in per_text for s in group})
        vectors = self.embedder.encode(unique)
        with threadpool_limits(1, "blas"):  # a few hundred rows: BLAS threads only spin on a small CPU
            distance = 1.0 - (vectors @ self._reference_vectors.T).max(axis=1)
        by_sentence = dict(zip(unique, on_grid(np.clip(distance, 0.0, 1.0)), strict=True))  # float32 noise: 0
        out = []
        for group in per_text:
            worst = max(group, key=by_sentence.__getitem__)
            out.append((float(by_sentence[worst]), worst))
        return out


def _shares(texts: list[str]) -> dict[str, float]:
    """The share of the texts each lemma occurs in."""
    counts: Counter = Counter()
    for text, repeats in Counter(texts).items():  # consecutive frames repeat their captions
        for word in lemma_set(text):
            counts[word] += repeats
    return {w: k / max(len(texts), 1) for w, k in counts.items()}


def _rule_words(rule) -> set[str]:
    """A rule's trigger words: its keywords, else the content words of its text and examples, lemmatised."""
    return {w for w in lemmas(" ".join(rule.keywords or [rule.text, *rule.examples])) if _content(w)}


def _content(word: str) -> bool:
    return len(word) > 2 and word not in STOPWORDS
