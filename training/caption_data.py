"""Training rows for a compact caption reasoner: the caption re-check's own prompts (rule book + one frame's
caption -> Verdict), built from the REFERENCE videos of a caption task only, so the videos `axr eval run`
evaluates are never seen in training.

Unlike the few-shot-normal protocol of `axr eval run` (reference videos give normal frames only), these rows
use the reference videos' anomaly labels. SFT targets come from templates that name the anomaly rules whose
keywords the caption matches: an anomalous frame whose caption matches no rule is left out (a target the
caption cannot support teaches guessing, not reasoning), and normal frames are drawn, seeded, up to
`normal_per_anomaly` times the anomalous ones. Keywords are judged against all reference videos' normal
captions (one pool). GRPO rows carry the label for the verdict reward.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from axr.eval.datasets.captions import task_rulebook, task_videos
from axr.eval.task_config import TaskConfig
from axr.reasoning.backends.base import flatten_text
from axr.reasoning.deduction import recheck_requests
from axr.reasoning.schema import RuleBook, VerdictAnswer
from axr.reasoning.triggers import TriggerStage


def caption_rows(
    task: TaskConfig, kind: str, limit: int | None = None, seed: int = 0, normal_per_anomaly: float = 1.0
) -> tuple[list[dict], dict[str, Any]]:
    """(rows, stats) from the reference videos of a caption task (`kind`: sft or grpo)."""
    book = task_rulebook(task)
    reference, held_out, skipped = task_videos(task)
    normal_texts = [c for v in reference for c in v.normal_captions()]
    trigger = TriggerStage(book, normal_texts, settings=task.pipeline.trigger)
    anomalous, normal, stats = [], [], Counter()
    for video in reference:
        for i, caption in enumerate(video.captions):
            hits = trigger.keyword_hits(caption)
            if video.labels[i] == 1 and not hits:
                stats["anomalous_without_matching_rule"] += 1
                continue
            (anomalous if video.labels[i] == 1 else normal).append((video.frame_id(i), caption, video.labels[i], hits))
    rng = random.Random(seed)
    normal = rng.sample(normal, min(len(normal), max(1, round(normal_per_anomaly * len(anomalous)))))
    chosen = sorted(anomalous + normal)
    if limit is not None:
        chosen = rng.sample(chosen, min(limit, len(chosen)))
    rows = [_row(book, frame, kind) for frame in chosen]
    stats.update(
        reference_videos=len(reference),
        held_out_videos_never_used=len(held_out),
        skipped_videos=len(skipped),
        label_1=sum(f[2] for f in chosen),
        label_0=sum(1 - f[2] for f in chosen),
    )
    every = task.split.reference_every
    return rows, {"split": f"reference videos only (one in every {every}, from the first)", **stats}


def _row(book: RuleBook, frame: tuple, kind: str) -> dict[str, Any]:
    sample_id, caption, label, hits = frame
    [request] = recheck_requests(book, [(sample_id, caption)])
    row: dict[str, Any] = {"sample_id": sample_id, "prompt": flatten_text(request)}
    if kind == "sft":
        answer = template_answer(book, caption, hits)
        row["completion"] = [{"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]
    else:
        row.update(label=label, anomaly_type="", box=None, rule_kinds=json.dumps(_rule_kinds(book)))
    return row


def template_answer(book: RuleBook, caption: str, hits: dict[str, list[str]]) -> dict[str, Any]:
    """The Verdict a careful reader of the rule book would write: anomalous when an anomaly rule's keywords
    appear in the caption (naming the rules and the words), normal otherwise."""
    texts = {r.id: r.text for r in book.rules("anomaly")}
    evidence = [caption[:200]]
    if not hits:
        answer = VerdictAnswer(
            evidence=evidence,
            rationale={
                "what": "The caption describes ordinary activity in the scene.",
                "why": "No anomaly rule of the rule book matches what the caption reports.",
                "how": "No action needed.",
            },
            verdict="normal",
            score=0.1,
            confidence=0.9,
        )
        return answer.model_dump(mode="json", exclude_none=True)
    ids = sorted(hits)
    words = sorted({w for rule in ids for w in hits[rule]})
    answer = VerdictAnswer(
        evidence=evidence,
        rules_matched=ids,
        rationale={
            "what": f"The caption reports {', '.join(words)}."[:400],
            "why": "; ".join(f"anomaly rule {rule} applies: {texts[rule]}" for rule in ids)[:400],
            "how": "Check the scene: the rule book marks this as abnormal here.",
        },
        verdict="anomalous",
        score=0.9,
        anomaly_type=texts[ids[0]][:60],
        severity="medium",
        confidence=0.9,
    )
    return answer.model_dump(mode="json", exclude_none=True)


def _rule_kinds(book: RuleBook) -> dict[str, str]:
    return {r.id: k for k in ("normal", "anomaly") for r in book.rules(k)}
