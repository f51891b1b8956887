"""MMEval-style judges: aggregation and agreement by hand, and two real SmolLM2 judges (hf and the vLLM server)
grading a run's explanations through `axr eval judge`, cached, and shown in the report."""

import json

import pytest

from axr.eval.judge import aggregate, judge_records
from axr.eval.records import PredictionRecord
from axr.reasoning.journal import Journal
from axr.reasoning.schema import CRITERIA
from tests.conftest import run_axr

REFERENCE = {"what": "a car hits a pole", "why": "the driver was speeding on ice", "how": "the car is wrecked"}


def _entry(sample, judge, what, why, how):
    return {"sample_id": sample, "judge": judge, "scores": {"what": what, "why": why, "how": how}}


def test_aggregate_means_and_agreement_by_hand():
    entries = [
        _entry("s1", "j1", 10, 4, 0),
        _entry("s2", "j1", 6, 2, 2),
        _entry("s3", "j1", 2, 8, 4),
        _entry("s1", "j2", 10, 4, 0),
        _entry("s2", "j2", 6, 2, 2),
        _entry("s3", "j2", 2, 8, 4),
        {"sample_id": "s4", "judge": "j2", "unparsed": True},
    ]
    result = aggregate(entries)
    assert result["judges"]["j1"]["what"] == 6.0 and result["judges"]["j1"]["overall"] == pytest.approx(38 / 9)
    assert result["judges"]["j2"]["unparsed"] == 1 and result["judges"]["j2"]["samples"] == 3
    what = result["agreement"]["j1 vs j2"]["what"]
    assert what == pytest.approx(
        {"n": 3, "mean_abs_diff": 0.0, "pearson": 1.0, "spearman": 1.0, "kappa_quadratic": 1.0}
    )
    entries[3] = _entry("s1", "j2", 2, 4, 0)  # the judges now disagree on s1's "what"
    what = aggregate(entries)["agreement"]["j1 vs j2"]["what"]
    assert what["mean_abs_diff"] == pytest.approx(8 / 3) and what["pearson"] < 0.5


def test_an_unparsed_verdict_scores_zero_without_a_model_call(tmp_path, hf_smollm2):
    records = [
        PredictionRecord(sample_id="s1", gt_rationale=REFERENCE, verdict={"verdict": "unparsed", "rationale": {}})
    ]
    journal = Journal(tmp_path / "judgements.jsonl", key="key")
    judge_records(records, hf_smollm2, "smol", journal)
    (entry,) = journal.records.values()
    assert entry["scores"] == {d: 0 for d in CRITERIA} and entry["meta"]["model_call"] is False


def _write_run(run):
    candidates = [
        {
            "what": "a car crashes into a pole",
            "why": "it drove too fast on an icy road",
            "how": "the car is destroyed",
        },
        {"what": "people walk on a street", "why": "nothing unusual", "how": "no effect"},
        {"what": "a car hits a pole", "why": "speeding", "how": "the car is badly damaged"},
    ]
    run.mkdir()
    with (run / "predictions.jsonl").open("w") as sink:
        for i, rationale in enumerate(candidates):
            verdict = {"verdict": "anomalous", "score": 0.9, "rationale": rationale, "rules_matched": []}
            sink.write(
                json.dumps(
                    {
                        "sample_id": f"clip{i}",
                        "status": "ok",
                        "gt_label": 1,
                        "gt_rationale": REFERENCE,
                        "verdict": verdict,
                    }
                )
                + "\n"
            )


def test_two_real_judges_grade_a_run_with_agreement_and_cache(tmp_path, vllm_server, smollm2, chromium):
    run = tmp_path / "run"
    _write_run(run)
    judges = ["--judge", f"openai:smollm2@{vllm_server.base_url}", "--judge", "hf:smollm2"]
    result = run_axr("eval", "judge", str(run), *judges)
    assert "judge scores" in result.stdout
    report = json.loads((run / "judge.json").read_text())
    assert set(report["judges"]) == {"openai:smollm2", "hf:smollm2"}
    assert report["judgeable"] == 3
    for row in report["judges"].values():
        assert row["samples"] + row["unparsed"] == 3 and all(0 <= row[d] <= 10 for d in CRITERIA)
    assert set(report["agreement"]["hf:smollm2 vs openai:smollm2"]) == set(CRITERIA)
    text = report["text_metrics"]["what"]
    assert text["n"] == 3 and 0 < text["rouge_l"] <= 1 and 0 < text["minilm_cosine"] <= 1
    lines_before = (run / "judgements.jsonl").read_text()
    run_axr("eval", "judge", str(run), *judges)
    assert (run / "judgements.jsonl").read_text() == lines_before  # judged once, never asked again
    run_axr("eval", "report", str(run))
    assert (
        "openai:smollm2: what" in (run / "report.html").read_text() or "unparsed" in (run / "report.html").read_text()
    )


def test_a_judge_that_gets_no_answer_records_nothing_and_a_rerun_asks_again(tmp_path):
    from axr.reasoning.vllm_server import free_port

    run = tmp_path / "run"
    _write_run(run)
    judge = ["--judge", f"openai:m@http://127.0.0.1:{free_port()}/v1", "--no-text-metrics"]  # nothing listens
    for _ in range(2):
        result = run_axr("eval", "judge", str(run), *judge)
        assert "3 judge requests got no answer" in " ".join(result.stderr.split())
        assert json.loads((run / "judge.json").read_text())["request_errors"] == 3
        journal = run / "judgements.jsonl"
        assert not journal.exists() or not journal.read_text().strip()  # a server fault is not a judgement
