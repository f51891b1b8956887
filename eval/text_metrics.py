"""Reference-based text metrics for explanations: ROUGE-L, BLEU and MiniLM embedding similarity.

Tokens are lower-cased words. Written here rather than pulled from a package because each is a few lines
and tested against hand-computed cases.

>>> round(rouge_l("the cat sat on the mat", "the cat lay on the mat"), 4)
0.8333
>>> bleu("a b c d", "a b c d")
1.0
>>> bleu("", "a b")
0.0
"""

from __future__ import annotations

import math
import re
from collections import Counter


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence against the lengths of both texts."""
    cand, ref = tokens(candidate), tokens(reference)
    if not cand or not ref:
        return 0.0
    lcs = _lcs(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu(candidate: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU with add-one smoothing of the 2..n-gram precisions (Lin and Och, 2004) and the brevity
    penalty; orders longer than the candidate are left out."""
    cand, ref = tokens(candidate), tokens(reference)
    if not cand or not ref:
        return 0.0
    orders = min(max_n, len(cand))
    log_sum = 0.0
    for n in range(1, orders + 1):
        grams = Counter(tuple(cand[i : i + n]) for i in range(len(cand) - n + 1))
        ref_grams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matched = sum(min(count, ref_grams[g]) for g, count in grams.items())
        total = sum(grams.values())
        if n > 1:
            matched, total = matched + 1, total + 1
        if matched == 0:
            return 0.0
        log_sum += math.log(matched / total)
    brevity = 1.0 if len(cand) > len(ref) else math.exp(1 - len(ref) / len(cand))
    return brevity * math.exp(log_sum / orders)


def embedding_similarity(pairs: list[tuple[str, str]], embedder) -> list[float]:
    """Cosine similarity of MiniLM embeddings of each (candidate, reference) pair."""
    if not pairs:
        return []
    vectors = embedder.encode([text for pair in pairs for text in pair])
    return [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]
