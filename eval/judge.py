"""MMEval-style judges: grade a run's explanations (what / why / how) against reference explanations.

Modelled on CUVA's MMEval, but complete: a fixed rubric per dimension (`axr.reasoning.schema.CRITERIA`), 0-2 per
criterion and 0-10 per dimension, structured output, every answer parsed and aggregated, several judges with
agreement statistics, and reference-based text metrics (ROUGE-L, BLEU, MiniLM similarity) beside them.
Judgements are journaled per (sample, judge), so an interrupted judging run resumes and a judged sample is
never sent again. A verdict that was never parsed has no explanation: it scores 0 without a model call.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score

from axr.eval.records import PredictionRecord, RecordJournal
from axr.eval.text_metrics import bleu, embedding_similarity, rouge_l
from axr.reasoning.backends import parse_model_spec
from axr.reasoning.backends.base import Backend, Sampling, system, user
from axr.reasoning.journal import Journal
from axr.reasoning.prompting import render
from axr.reasoning.schema import CRITERIA, JudgeAnswer, Judgement

DIMENSIONS = tuple(CRITERIA)
JUDGE_SAMPLING = Sampling(max_tokens=300)


def judgeable(record: PredictionRecord) -> bool:
    reference = record.gt_rationale or {}
    return record.ok and bool(record.verdict) and any(reference.get(d) for d in DIMENSIONS)


def _zero(sample_id: str, judge: str, why: str) -> Judgement:
    grades = {d: dict.fromkeys(CRITERIA[d], 0) for d in DIMENSIONS}
    return Judgement(**grades, comment=why, sample_id=sample_id, judge=judge, meta={"model_call": False})


def judge_records(
    records: list[PredictionRecord],
    backend: Backend,
    name: str,
    journal: Journal,
    batch: int = 16,
    on_judged=None,
) -> int:
    """Judge every judgeable record not yet in the journal with one judge, writing each chunk as it returns.
    A request that got no answer (server down, timeout) is not a judgement: it is left out of the journal,
    so a rerun asks again; returns how many there were."""
    request_errors = 0
    todo = [r for r in records if judgeable(r) and f"{r.sample_id}|{name}" not in journal]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        asked = [r for r in chunk if _has_explanation(r.verdict)]
        entries = [_entry(_zero(r.sample_id, name, "no explanation to judge")) for r in chunk if r not in asked]
        requests = [
            [
                system(
                    render(
                        "judge",
                        reference=r.gt_rationale,
                        candidate=r.verdict["rationale"],
                        rubric=CRITERIA,
                        schema=JudgeAnswer,
                    )
                ),
                user("Grade the candidate."),
            ]
            for r in asked
        ]
        completions = backend.generate(requests, JUDGE_SAMPLING, JudgeAnswer) if requests else []
        for record, completion in zip(asked, completions, strict=True):
            if completion.error:
                request_errors += 1
                continue
            meta = {"model_call": True, "tokens_in": completion.tokens_in, "tokens_out": completion.tokens_out}
            sample_id = record.sample_id
            if completion.parsed is None:  # recorded, and left out of the scores
                meta.update(error=completion.parse_error or "no answer", raw=completion.text)
                entries.append(
                    {
                        "key": f"{sample_id}|{name}",
                        "sample_id": sample_id,
                        "judge": name,
                        "unparsed": True,
                        "meta": meta,
                    }
                )
            else:
                grades = completion.parsed.model_dump()
                entries.append(_entry(Judgement(**grades, sample_id=sample_id, judge=name, meta=meta)))
        journal.append(entries)
        if on_judged:
            on_judged(len(chunk))
    return request_errors


def _has_explanation(verdict: dict[str, Any]) -> bool:
    rationale = verdict.get("rationale") or {}
    return verdict["verdict"] != "unparsed" and any(rationale.get(d) for d in DIMENSIONS)


def _entry(judgement: Judgement) -> dict[str, Any]:
    return {"key": f"{judgement.sample_id}|{judgement.judge}", **judgement.model_dump(), "scores": judgement.scores()}


def text_metrics(records: list[PredictionRecord], embedder=None) -> dict[str, dict[str, float]]:
    """Mean ROUGE-L, BLEU and (with an embedder) MiniLM similarity per dimension over judgeable records."""
    out = {}
    judged = [r for r in records if judgeable(r)]
    for dimension in DIMENSIONS:
        pairs = [
            ((r.verdict.get("rationale") or {}).get(dimension, ""), r.gt_rationale.get(dimension, ""))
            for r in judged
            if r.gt_rationale.get(dimension)
        ]
        if not pairs:
            continue
        row = {
            "rouge_l": float(np.mean([rouge_l(c, ref) for c, ref in pairs])),
            "bleu": float(np.mean([bleu(c, ref) for c, ref in pairs])),
            "n": len(pairs),
        }
        if embedder is not None:
            row["minilm_cosine"] = float(np.mean(embedding_similarity(pairs, embedder)))
        out[dimension] = row
    return out


def aggregate(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judge: mean 0-10 per dimension, and unparsed answers; per pair of judges: agreement per dimension
    over the samples both scored (Pearson, Spearman, quadratic-weighted kappa, mean absolute difference)."""
    by_judge: dict[str, dict[str, dict[str, int]]] = {}
    unparsed: dict[str, int] = {}
    for entry in entries:
        if entry.get("unparsed"):
            unparsed[entry["judge"]] = unparsed.get(entry["judge"], 0) + 1
        else:
            by_judge.setdefault(entry["judge"], {})[entry["sample_id"]] = entry["scores"]
    judges = {
        name: {
            **{d: float(np.mean([s[d] for s in scores.values()])) for d in DIMENSIONS},
            "overall": float(np.mean([np.mean(list(s.values())) for s in scores.values()])),
            "samples": len(scores),
            "unparsed": unparsed.get(name, 0),
        }
        for name, scores in sorted(by_judge.items())
    }
    agreement = {}
    for first, second in itertools.combinations(sorted(by_judge), 2):
        shared = sorted(set(by_judge[first]) & set(by_judge[second]))
        agreement[f"{first} vs {second}"] = {
            d: _agreement([by_judge[first][s][d] for s in shared], [by_judge[second][s][d] for s in shared])
            for d in DIMENSIONS
        }
    return {"judges": judges, "agreement": agreement}


def _agreement(a: list[int], b: list[int]) -> dict[str, float | None]:
    varied = len(a) > 1 and len(set(a)) > 1 and len(set(b)) > 1
    return {
        "n": len(a),
        "mean_abs_diff": float(np.mean(np.abs(np.subtract(a, b)))) if a else None,
        "pearson": float(pearsonr(a, b)[0]) if varied else None,
        "spearman": float(spearmanr(a, b)[0]) if varied else None,
        "kappa_quadratic": float(cohen_kappa_score(a, b, weights="quadratic", labels=list(range(11))))
        if varied
        else None,
    }


def parse_judge(text: str) -> dict[str, str | None]:
    """'BACKEND:MODEL[@BASE_URL]' (as --judge takes it) -> {backend, model, base_url}."""
    backend, model, base_url = parse_model_spec(text, "--judge")
    return {"backend": backend, "model": model, "base_url": base_url}


def task_judges(run: Path) -> list[dict[str, Any]]:
    """The judges the run's task file names (its task.json), if any."""
    task_file = run / "task.json"
    if not task_file.is_file():
        return []
    return (json.loads(task_file.read_text()).get("judge") or {}).get("judges", [])


def judge_run(run: Path, judges: list[tuple[str, Backend]], embedder=None, on_judged=None) -> dict[str, Any]:
    """Judge a run folder's predictions with each (name, backend); returns what judge.json holds."""
    predictions = RecordJournal(run / "predictions.jsonl").records
    records = list(predictions.values())
    journal = Journal(run / "judgements.jsonl", key="key")
    request_errors = sum(judge_records(records, b, name, journal, on_judged=on_judged) for name, b in judges)
    names = {name for name, _ in judges}
    entries = [e for e in journal.records.values() if e["judge"] in names and e["sample_id"] in predictions]
    return {
        **aggregate(entries),
        "text_metrics": text_metrics(records, embedder),
        "judgeable": sum(judgeable(r) for r in records),
        "request_errors": request_errors,
    }
