"""Data builders: any eval task's Samples -> SFT and GRPO datasets (Hugging Face `datasets`, saved to disk).

Prompts are exactly what direct mode sends at inference (`direct_system` + reference images + the query),
so a trained model serves through `axr detect --direct` and `axr eval run` unchanged.

- SFT rows (TRL's conversational prompt-completion with an `images` column): the completion is the Verdict
  JSON, optionally as `<think>...</think><answer>...</answer>`. Its rationale comes from the ground truth
  (`gt`), from templates (`template`), or from a teacher model through any backend (`teacher`; an answer
  whose label disagrees with the ground truth is replaced by the template one and counted).
- GRPO rows: the same prompt and images plus the columns rewards read: label, anomaly_type, box,
  rule_kinds (JSON {rule id: kind}).

Next to the dataset, README.md is its data card: source task and split, counts per label, settings.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from axr.eval.samples import MediaLoader, load_rulebook, load_task_samples, select_samples
from axr.eval.task_config import TaskConfig
from axr.reasoning.deduction import direct_question
from axr.reasoning.media import MediaError
from axr.reasoning.prompting import render, template_version
from axr.reasoning.schema import RuleBook, Sample, VerdictAnswer

RATIONALE_SOURCES = ("gt", "template", "teacher")


def prompt_messages(n_references: int, n_query: int, domain: str, book: RuleBook | None) -> list[dict]:
    """The direct-mode prompt with image placeholders (references first, then the query)."""
    text = render(
        "direct_system",
        domain=domain,
        n_references=n_references,
        n_query=n_query,
        rulebook=book,
        hint=None,
        schema=VerdictAnswer,
    )
    ask = direct_question(n_query)
    images = [{"type": "image", "text": None} for _ in range(n_references + n_query)]
    return [
        {"role": "system", "content": [{"type": "text", "text": text}]},
        {"role": "user", "content": [*images, {"type": "text", "text": ask}]},
    ]


def template_rationale(sample: Sample, domain: str) -> dict[str, str]:
    if not sample.gt_label:
        return {
            "what": f"the {domain} matches the normal references",
            "why": "no part differs from normal",
            "how": "no visible effect",
        }
    kind = (sample.gt_type or "anomaly").replace("_", " ")
    where = ""
    if sample.gt_box:
        x, y = (sample.gt_box[0] + sample.gt_box[2]) / 2, (sample.gt_box[1] + sample.gt_box[3]) / 2
        where = f" around ({x:.2f}, {y:.2f})"
    return {
        "what": f"a {kind}{where}",
        "why": f"a normal {domain} shows no {kind}",
        "how": f"the {kind} is visible in the image{where}",
    }


def target_answer(sample: Sample, domain: str, rationale: dict[str, str] | None = None) -> dict[str, Any]:
    """The Verdict a perfect model would give for the sample, from its ground truth."""
    anomalous = bool(sample.gt_label)
    box = sample.gt_box
    answer = VerdictAnswer(
        evidence=[],
        rules_matched=list(sample.meta.get("gt_rules", [])),
        rationale=rationale
        or (sample.gt_rationale.model_dump() if sample.gt_rationale else None)
        or template_rationale(sample, domain),
        verdict="anomalous" if anomalous else "normal",
        score=0.95 if anomalous else 0.05,
        anomaly_type=sample.gt_type if anomalous else None,
        severity=sample.meta.get("severity", "medium") if anomalous else "none",
        location={"x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3]} if anomalous and box else None,
        confidence=0.9,
    )
    return answer.model_dump(mode="json", exclude_none=True)


def completion_text(answer: dict[str, Any], think: bool) -> str:
    text = json.dumps(answer, ensure_ascii=False)
    if not think:
        return text
    rationale = answer.get("rationale", {})
    reasoning = " ".join(rationale.get(k, "") for k in ("what", "why", "how") if rationale.get(k))
    return f"<think>{reasoning}</think><answer>{text}</answer>"


def build_rows(
    task: TaskConfig,
    kind: str,
    rationale: str = "gt",
    think: bool = False,
    teacher=None,
    limit: int | None = None,
    on_row=None,
) -> tuple[list[dict], dict[str, Any]]:
    """(rows, stats) for a task's split. Samples whose media cannot be read are skipped, counted, and named
    with their problem in `stats["skipped"]` ({sample_id: error})."""
    if kind not in ("sft", "grpo"):
        raise ValueError(f"unknown dataset kind {kind!r}; choose sft or grpo")
    if rationale not in RATIONALE_SOURCES:
        raise ValueError(f"unknown rationale source {rationale!r}; choose one of {', '.join(RATIONALE_SOURCES)}")
    if rationale == "teacher" and teacher is None:
        raise ValueError("rationale 'teacher' needs a teacher backend")
    if task.mode == "captions":
        if rationale not in ("gt", "template") or think:
            raise ValueError("caption tasks: rows come from templates (--rationale template, no --think)")
        from axr.training.caption_data import caption_rows

        return caption_rows(task, kind, limit)
    labelled = [s for s in load_task_samples(task) if s.gt_label is not None]
    samples = select_samples(labelled, limit, (0, 1))  # a fixed, mixed subset (as `axr eval run --limit`)
    loader, book = MediaLoader(task), load_rulebook(task)
    domain = task.pipeline.domain
    kinds = {r.id: k for k in ("normal", "anomaly") for r in book.rules(k)} if book else {}
    rows, stats, skipped = [], Counter(), {}
    for sample in samples:
        try:
            images, references = loader.query(sample), loader.references(sample)
        except (MediaError, OSError) as error:
            stats["skipped_unreadable"] += 1
            skipped[sample.sample_id] = str(error)
            continue
        row = {
            "sample_id": sample.sample_id,
            "images": [*references, *images],
            "prompt": prompt_messages(len(references), len(images), domain, book),
        }
        if kind == "sft":
            answer = _answer(sample, domain, rationale, teacher, references, images, book, stats)
            row["completion"] = [
                {"role": "assistant", "content": [{"type": "text", "text": completion_text(answer, think)}]}
            ]
        else:
            row.update(
                label=int(sample.gt_label),
                anomaly_type=sample.gt_type or "",
                box=sample.gt_box,
                rule_kinds=json.dumps(kinds),
            )
        rows.append(row)
        stats[f"label_{sample.gt_label}"] += 1
        if on_row:
            on_row(1)
    return rows, {**stats, **({"skipped": skipped} if skipped else {})}


def _answer(sample, domain, rationale, teacher, references, images, book, stats) -> dict[str, Any]:
    if rationale == "template":
        return target_answer(sample, domain, template_rationale(sample, domain))
    if rationale == "gt":
        return target_answer(sample, domain)
    from axr.reasoning.deduction import DirectItem, direct_verdicts

    (verdict,) = direct_verdicts(teacher, [DirectItem(sample.sample_id, images, references)], book, domain=domain)
    if verdict.meta.get("request_error"):  # the server did not answer: no verdict to keep or reject
        stats["teacher_request_errors"] += 1
        stats.setdefault("first_teacher_error", verdict.meta["request_error"])
        return target_answer(sample, domain, template_rationale(sample, domain))
    if verdict.pred_label != sample.gt_label:
        stats["teacher_rejected"] += 1  # a rationale for the wrong verdict teaches the wrong thing
        return target_answer(sample, domain, template_rationale(sample, domain))
    stats["teacher_kept"] += 1
    return target_answer(sample, domain, verdict.rationale.model_dump())


def save_dataset(rows: list[dict], out: Path, card: dict[str, Any]) -> Path:
    from datasets import Dataset

    if not rows:
        raise ValueError("no rows to save: every sample was skipped or the split is empty")
    Dataset.from_list(rows).save_to_disk(str(out))
    lines = [f"- {k}: {v}" for k, v in card.items() if not isinstance(v, dict)]
    for name, entries in ((k, v) for k, v in card.items() if isinstance(v, dict)):
        lines += [f"- {name}:", *(f"  - {key}: {value}" for key, value in entries.items())]
    (out / "README.md").write_text(
        "---\npretty_name: AXR training data\n---\n\n# AXR training data\n\nBuilt by `axr train data` from an eval "
        f"task (prompt versions: direct_system {template_version('direct_system')}, deduce_system "
        f"{template_version('deduce_system')}).\n\n" + "\n".join(lines) + "\n"
    )
    return out
