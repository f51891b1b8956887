"""Training rows for a compact one-token scorer, with no anomaly label: the scoring stage's own prompt
(`score_system` with the rule book + `score_user` with one caption) and a one-token answer, yes or no.

- no: the distinct captions of the normal reference frames of a caption task (the detector's own references:
  the frames `axr eval run` fits on; the videos it evaluates are never read); with `rules_first`, less those
  that say a person does what an anomaly rule names (`anomalous_actions`).
- yes: each such caption with one anomaly rule written in (`pseudo_anomalies`: templates, or a served
  teacher's rewrite), the rule drawn at random (with `rules_first`, in proportion to the things it names),
  seeded.

A caption and its pseudo-anomalous copies land in one part, chosen by a hash of the caption: `sft` (trained
on first), `grpo` (trained on after), `check` (held back: agreement after each stage, the probe's test).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from typing import Any

from axr.eval.datasets.captions import task_rulebook, task_videos
from axr.eval.task_config import TaskConfig
from axr.reasoning.prompting import render, template_version
from axr.reasoning.schema import Rule, RuleBook
from axr.reasoning.scoring import NO, YES, normalise
from axr.training.pseudo_anomalies import (
    anomalous_actions,
    pseudo_anomalous,
    rule_sentences,
    teacher_rewrites,
)

PARTS = {"sft": 0.7, "grpo": 0.15, "check": 0.15}  # shares of the normal captions, in this order


def part_of(caption: str) -> str:
    """The part a normal caption (and its pseudo-anomalous copies) belongs to, fixed by its text."""
    point = int(hashlib.sha256(caption.encode()).hexdigest()[:8], 16) / 16**8
    edge = 0.0
    for name, share in PARTS.items():
        edge += share
        if point < edge:
            return name
    return "check"


def scoring_prompt(book: RuleBook, caption: str) -> list[dict[str, str]]:
    """The messages the scoring stage sends for a caption (`CaptionScorer`), as TRL's conversational rows."""
    return [
        {"role": "system", "content": render("score_system", rulebook=book, normal_summary="")},
        {"role": "user", "content": render("score_user", caption=caption)},
    ]


def reference_captions(task: TaskConfig) -> tuple[list[str], dict[str, Any]]:
    """The distinct captions of the task's normal reference frames, and what was read."""
    reference, held_out, problems = task_videos(task)
    captions = list(dict.fromkeys(normalise(c) for video in reference for c in video.normal_captions()))
    return captions, {
        "reference_videos": len(reference),
        "evaluated_videos_never_read": len(held_out),
        "unreadable_videos": len(problems),
    }


def scorer_rows(
    task: TaskConfig,
    negatives: int | None = None,
    positives_per_negative: int = 1,
    seed: int = 0,
    teacher=None,
    on_progress=None,
    list_share: float = 0.5,
    rules_first: bool = False,
) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """({part: rows}, stats). `negatives`: at most this many normal captions (a seeded sample); each gives
    `positives_per_negative` pseudo-anomalous rows, each for another random anomaly rule; `list_share`: how
    often a thing goes into the caption's own list of what is in view (`pseudo_anomalous`). `rules_first`:
    normal captions that name an anomaly rule's action are left out, and rules are drawn in proportion to
    the things they name (`_draw_rules`); else every normal caption is a "no" and every rule is as likely."""
    book = task_rulebook(task)
    rules = [(rule, section.name) for section in book.sections for rule in section.anomaly if rule.enabled]
    captions, stats = reference_captions(task)
    if not captions:
        raise ValueError(f"{task.task}: no normal reference caption to learn from (check split.reference_every)")
    if rules_first:
        named = anomalous_actions(book.sections)
        kept = [c for c in captions if not (named and named.search(c))]
        stats["negatives_naming_an_anomalous_action_left_out"] = len(captions) - len(kept)
        captions = kept
    rng = random.Random(seed)
    if negatives is not None and negatives < len(captions):
        captions = rng.sample(captions, negatives)
    pairs = [(caption, _draw_rules(rules, positives_per_negative, rng, rules_first)) for caption in captions]
    written = _positives(pairs, rng, teacher, book.domain, on_progress, list_share)
    parts: dict[str, list[dict]] = {name: [] for name in PARTS}
    counts = Counter()
    for (caption, chosen), texts in zip(pairs, written, strict=True):
        part = parts[part_of(caption)]
        part.append(_row(book, caption, None, "reference"))
        for (rule, _), (text, source) in zip(chosen, texts, strict=True):
            part.append(_row(book, text, rule, source))
            counts[source] += 1
    stats.update(
        {f"{name}_rows": len(rows) for name, rows in parts.items()},
        negatives=len(captions),
        list_share=list_share,
        positives=sum(counts.values()),
        positive_sources=dict(counts),
        rules=len(rules),
    )
    return parts, stats


def _draw_rules(rules: list[tuple[Rule, str]], k: int, rng: random.Random, by_phrase: bool) -> list[tuple[Rule, str]]:
    """k distinct (rule, section)s, at random; `by_phrase`: each in proportion to the things it names (its
    phrases), so that every action or thing of the book gets about the same share of pseudo-anomalies (else
    a rule that lists three, "riding a bicycle or scooter, skateboarding", gives each a third of one rule's)."""
    if not by_phrase:
        return rng.sample(rules, min(k, len(rules)))  # the draw of the rows measured before rules_first
    left, chosen = list(rules), []
    for _ in range(min(k, len(left))):
        weights = [len(rule_sentences(rule, section)) for rule, section in left]
        chosen.append(left.pop(rng.choices(range(len(left)), weights=weights)[0]))
    return chosen


def _positives(pairs, rng, teacher, domain, on_progress, list_share) -> list[list[tuple[str, str]]]:
    """[(text, source)] per caption: the teacher's rewrite where it gave a usable one, else the template's."""
    flat = [(caption, rule, section) for caption, chosen in pairs for rule, section in chosen]
    rewrites = [None] * len(flat)
    if teacher is not None:
        chunk = 32
        for start in range(0, len(flat), chunk):
            part = flat[start : start + chunk]
            rewrites[start : start + chunk] = teacher_rewrites(teacher, [(c, r) for c, r, _ in part], domain)
            if on_progress:
                on_progress(min(start + chunk, len(flat)), len(flat))
    texts = [
        (rewrite, "teacher") if rewrite else (pseudo_anomalous(caption, rule, section, rng, list_share), "template")
        for (caption, rule, section), rewrite in zip(flat, rewrites, strict=True)
    ]
    out, at = [], 0
    for _, chosen in pairs:
        out.append(texts[at : at + len(chosen)])
        at += len(chosen)
    return out


def _row(book: RuleBook, caption: str, rule: Rule | None, source: str) -> dict[str, Any]:
    label = int(rule is not None)
    return {
        "prompt": scoring_prompt(book, caption),
        "completion": [{"role": "assistant", "content": YES if label else NO}],
        "label": label,
        "rule": rule.id if rule else "",
        "caption": caption,
        "source": source,
    }


def card(task: TaskConfig, stats: dict[str, Any], seed: int, teacher: str | None) -> dict[str, Any]:
    """The data card's facts: where every row came from, and that no anomaly label was read."""
    every = task.split.reference_every
    return {
        "source task": task.task,
        "kind": "scorer (one-token yes/no, the scoring stage's prompt)",
        "split": f"normal frames of the reference videos only (one video in every {every}, from the first); "
        "the evaluated videos are never read",
        "anomaly labels read": "none: positives are pseudo-anomalies written from the rule book's anomaly rules",
        "pseudo-anomalies written by": "templates" + (f" and teacher {teacher}" if teacher else ""),
        "prompt": f"{template_version('score_system')} + {template_version('score_user')} (the scoring stage's)",
        "parts": ", ".join(f"{name} {share:.0%}" for name, share in PARTS.items())
        + " of the normal captions, by hash",
        "seed": seed,
        **stats,
    }
