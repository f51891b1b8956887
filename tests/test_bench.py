"""The backends benchmark runs both comparisons on real models and states what it compared (no timing asserts)."""

import json

import pytest

from axr.eval.bench import bench_hf, bench_requests
from axr.reasoning.backends import Sampling
from tests.conftest import run_axr


def test_bench_requests_are_distinct_and_sized():
    requests = bench_requests(10, with_images=True)
    assert len(requests) == 10 and requests[0][0]["content"][0]["type"] == "image"
    assert bench_requests(3, with_images=False)[0][0]["content"][0]["type"] == "text"


def test_bench_hf_rows(hf_tiny):
    one, batched = bench_hf(hf_tiny, 6, 3, Sampling(max_tokens=4))
    assert (one.setting, batched.setting) == ("one by one", "batch 3")
    assert one.requests == batched.requests == 6 and one.tokens_out == batched.tokens_out


def test_bench_backends_command(vllm_server, tmp_path):
    out = tmp_path / "bench.json"
    result = run_axr(
        "eval",
        "bench",
        "backends",
        "--hf-model",
        "tiny-qwen2.5-vl",
        "--openai-model",
        "smollm2",
        "--base-url",
        vllm_server.base_url,
        "--requests",
        "8",
        "--batch",
        "4",
        "--concurrency",
        "4",
        "--max-tokens",
        "8",
        "--out",
        str(out),
    )
    rows = json.loads(out.read_text())
    assert [(r["backend"], r["setting"]) for r in rows] == [
        ("hf", "one by one"),
        ("hf", "batch 4"),
        ("openai", "concurrency 1"),
        ("openai", "concurrency 4"),
    ]
    assert all(r["requests"] == 8 and r["seconds"] > 0 for r in rows)
    assert "batch 4 is" in result.stdout and "concurrency 4 is" in result.stdout


def test_bench_task_compares_settings_on_the_same_samples(tmp_path, tiny_vlm):
    out = tmp_path / "rows.json"
    result = run_axr(
        "eval",
        "bench",
        "task",
        "textile",
        "--setting",
        "batch=1",
        "--setting",
        "batch=4",
        "--setting",
        "batch=4,max_tokens=8",
        "--limit",
        "8",
        "--out",
        str(out),
        env={"COLUMNS": "80"},  # a plain terminal: the table must not cut its headers to "set…"
    )
    rows = json.loads(out.read_text())
    assert "setting" in result.stdout and "tokens_out_per_s" in result.stdout and "…" not in result.stdout
    assert [r["setting"] for r in rows] == ["batch=1", "batch=4", "batch=4,max_tokens=8"]
    assert all(r["samples"] == 8 and r["samples_per_s"] > 0 for r in rows)
    assert rows[0]["tokens_in"] == rows[1]["tokens_in"]  # the same samples and prompts in each setting
    # 8 tokens cannot hold a verdict: every answer fails, takes its one repair turn, and is recorded unparsed
    assert rows[2]["unparsed_rate"] == 1.0 and rows[2]["model_calls"] == 16 and rows[0]["model_calls"] == 8
    assert "the samples/s of batch=1" in result.stdout
    bad = run_axr("eval", "bench", "task", "textile", "--setting", "batch", check=False)
    assert bad.returncode == 2 and "expected key=value" in bad.stderr


def test_judge_cases_ship_three_explanations_each():
    from axr.eval.bench import JUDGE_KINDS, judge_cases

    cases = judge_cases()
    assert len(cases) == 8 and len({c["id"] for c in cases}) == 8
    assert all(set(c[k]) == {"what", "why", "how"} for c in cases for k in JUDGE_KINDS)


@pytest.mark.slow
def test_bench_judge_grades_each_kind_with_smollm2(tmp_path, smollm2):
    """`axr eval bench judge` grades a case's reference, paraphrase and unrelated explanation with a real
    judge and says what it compared (SmolLM2 is too small to order them; the figures are its own)."""
    out = tmp_path / "judge.json"
    result = run_axr("eval", "bench", "judge", "--judge", "hf:smollm2", "--limit", "1", "--out", str(out))
    [row] = json.loads(out.read_text())
    assert row["judge"] == "hf:smollm2" and row["cases"] == 1 and row["tokens_out"] > 0
    if row["graded"]:  # every kind of the case parsed: totals on the rubric's 0-30 scale
        assert all(0 <= row[f"mean_{k}"] <= 30 for k in ("reference", "paraphrase", "unrelated"))
    assert "judge ordering: 1 cases" in result.stdout and "a useful judge" in result.stdout


def test_bench_reasoner_compares_recheck_settings_on_the_same_frames(tmp_path, tiny_vlm):
    """The trigger stage alone beside a re-check by a real (random, tiny) model through hf on a caption set."""
    import yaml

    from tests.captions_layout import synthetic_videos, write_caption_set

    data_dir = write_caption_set(tmp_path / "set", synthetic_videos(3, 6))  # v0 a reference, v1 and v2 held out
    rules = tmp_path / "rules.yaml"
    book = {"name": "walkway", "sections": [{"name": "a", "anomaly": [{"id": "a1", "text": "Riding a bicycle"}]}]}
    rules.write_text(yaml.safe_dump(book))
    common = f"rules={rules},trigger.novelty=false,smoothing.window=3"
    model = "recheck.backend=hf,recheck.model=tiny-qwen2.5-vl,recheck.max_tokens=32"
    out, runs = tmp_path / "rows.json", tmp_path / "runs"
    settings = ["--setting", f"{common},recheck.policy=none", "--setting", f"{common},recheck.policy=all,{model}"]
    command = ["eval", "bench", "reasoner", "captions", "--data-dir", str(data_dir), *settings, "--out", str(out)]
    result = run_axr(*command, "--workdir", str(runs))
    alone, checked = json.loads(out.read_text())
    assert alone["frames_rechecked"] == 0 and alone["auc_change"] == 0.0
    assert alone["agreement_with_labels"] is None and alone["ceiling_frame_auc_pooled"] is None
    assert checked["frames_rechecked"] == 12 and checked["tokens_out_per_frame"] > 0  # every held-out frame
    assert checked["auc_change"] == round(checked["frame_auc_pooled"] - alone["frame_auc_pooled"], 2)
    # every frame re-checked: a re-checker that always gave the label would separate the classes exactly
    assert checked["ceiling_frame_auc_pooled"] == 100.0
    records = [json.loads(line) for line in (runs / "setting-1" / "predictions.jsonl").read_text().splitlines()]
    answers = [(r["verdict"]["verdict"], r["gt_label"]) for r in records if r["verdict"]]
    answers = [(verdict, label) for verdict, label in answers if verdict != "unparsed"]
    assert len(answers) == 12 - checked["unparsed"] - checked["request_errors"]
    right = sum((verdict == "anomalous") == bool(label) for verdict, label in answers)
    assert checked["agreement_with_labels"] == (round(right / len(answers), 4) if answers else None)
    assert "model settings on the same held-out frames" in result.stdout
    run_axr(*command, "--workdir", str(runs))  # a rerun resumes the journaled answers: nothing asked again
    again = json.loads(out.read_text())[1]
    assert json.loads((runs / "setting-1" / "metrics.json").read_text())["cost"]["resumed"] == 12
    assert again["tokens_out_per_frame"] == checked["tokens_out_per_frame"]  # the answers' cost, kept with them
    assert again["frame_auc_pooled"] == checked["frame_auc_pooled"]
    bad = run_axr("eval", "bench", "reasoner", "textile", "--setting", "batch=1", check=False)
    assert bad.returncode == 2 and "not a caption task" in bad.stderr


def test_bench_reasoner_reports_each_part_of_the_scoring_stage_and_its_cost(tmp_path, smollm2):
    """SmolLM2 through hf scores each distinct caption once; the row has the trigger alone (the same AUC as the
    run without scoring), the model alone and fused, and what the scoring cost per frame and per caption."""
    from tests.captions_layout import synthetic_videos, write_caption_set

    data_dir = write_caption_set(tmp_path / "set", synthetic_videos(6, 30))
    book = tmp_path / "rules.txt"
    book.write_text("**Rules for Anomaly Human Activities:**\n1. Riding a bicycle or skateboard\n")
    model = f"recheck.backend=hf,recheck.model={smollm2}"
    settings = ["--setting", "trigger:recheck.policy=none", "--setting", f"smollm2:scoring.policy=all,{model}"]
    out = tmp_path / "rows.json"
    command = ["eval", "bench", "reasoner", "captions", "--data-dir", str(data_dir), "--set", f"pipeline.rules={book}"]
    result = run_axr(*command, *settings, "--out", str(out), env={"AXR_CACHE": str(tmp_path / "cache")})
    alone, scored = json.loads(out.read_text())
    assert [alone["setting"], scored["setting"]] == ["trigger", "smollm2"] and alone["auc_fused"] is None
    assert scored["auc_trigger"] == alone["frame_auc_pooled"] and scored["auc_fused"] == scored["frame_auc_pooled"]
    assert 0 <= scored["auc_model"] <= 100
    frames = 4 * 30  # the held-out videos' frames; their captions are 5 distinct texts
    assert scored["distinct_scored"] == 5 and scored["distinct_share_of_frames"] == round(5 / frames, 4)
    assert scored["scoring_tokens_out_per_frame"] == round(5 / frames, 4)  # one answer token per distinct caption
    assert scored["scoring_tokens_in_per_frame"] > 0 and scored["seconds_per_distinct_caption"] > 0
    assert scored["prefix_cache_hit_rate"] is None  # hf has no server counters to read
    assert "fused" in result.stdout and "s/caption" in result.stdout


def test_bench_probe_answers_the_uncertain_frames_by_keywords_probe_and_labels(tmp_path):
    """Captions that say plainly what is wrong: rule keywords and a probe trained on the reference videos'
    labels both answer every frame right, so each reaches the ceiling; a band that chooses nothing changes
    nothing; reference videos without anomalies cannot train a probe (a clear error)."""
    import yaml

    from axr.eval.bench import bench_probe
    from axr.eval.tasks import load_task
    from tests.captions_layout import ANOMALOUS, NORMAL, synthetic_videos, write_caption_set

    def frame(i: int) -> tuple[str, int]:
        return (ANOMALOUS[i % 2], 1) if 6 <= i < 12 else (NORMAL[i % 3], 0)

    data_dir = write_caption_set(tmp_path / "set", {f"test_{v:02d}": [frame(i) for i in range(18)] for v in range(6)})
    rules = tmp_path / "rules.yaml"
    anomaly = [{"id": "a1", "text": "Riding a bicycle or a skateboard"}]
    rules.write_text(yaml.safe_dump({"name": "walkway", "sections": [{"name": "a", "anomaly": anomaly}]}))
    out = tmp_path / "rows.json"
    common = ["--data-dir", str(data_dir), "--rules", str(rules), "--set", "pipeline.smoothing.window=3"]
    result = run_axr("eval", "bench", "probe", "captions", "--band", "1000", "--band", "0", *common, "--out", str(out))
    everything, nothing = json.loads(out.read_text())
    assert everything["frames_rechecked"] == 4 * 18  # the held-out videos test_01, 02, 04, 05, every frame
    assert everything["ceiling"] == everything["keywords"] == everything["probe"] == 100.0
    assert everything["keywords_agrees"] == everything["probe_agrees"] == 1.0
    assert everything["probe_change"] == round(100.0 - everything["trigger"], 2)
    assert nothing["frames_rechecked"] == 0 and nothing["probe_agrees"] is None
    assert nothing["ceiling"] == nothing["probe"] == nothing["trigger"] == everything["trigger"]
    assert "probe trained on captions" in result.stdout
    plain = write_caption_set(tmp_path / "plain", synthetic_videos(3, 18))  # its reference video is all normal
    task = load_task("captions", {"dataset.data_dir": str(plain), "pipeline.rules": str(rules)})
    with pytest.raises(ValueError, match="need normal and anomalous frames for the probe"):
        bench_probe(task, task, [0.1])  # the command prints this line and exits 2, as for any ValueError


def test_bench_fusion_shows_what_a_scorer_must_reach_before_fusion_helps(tmp_path):
    """A stand-in scorer of known quality (labels plus noise): perfect alone without noise, worse with it, and
    fused beside the trigger alone on the same frames."""
    from tests.captions_layout import synthetic_videos, write_caption_set

    data_dir = write_caption_set(tmp_path / "set", synthetic_videos(6, 30))
    book = tmp_path / "rules.txt"
    book.write_text("**Rules for Anomaly Human Activities:**\n1. Riding a bicycle or skateboard\n")
    out = tmp_path / "rows.json"
    command = ["eval", "bench", "fusion", "captions", "--data-dir", str(data_dir), "--set", f"pipeline.rules={book}"]
    command += ["--set", "pipeline.smoothing.window=1"]  # frame by frame: a perfect scorer shows as 100
    run_axr(*command, "--noise", "0", "--noise", "100", "--weight", "0.5", "--out", str(out))
    perfect, noisy = json.loads(out.read_text())
    assert perfect["trigger"] == noisy["trigger"]  # the same frames, the same trigger
    assert perfect["model"] == 100.0 and perfect["fused_0.5"] == 100.0  # every anomalous caption above the rest
    assert set(perfect) == {"noise", "trigger", "model", "fused_0.5"}
    bad = run_axr("eval", "bench", "fusion", "textile", check=False)
    assert bad.returncode == 2 and "not a caption task" in bad.stderr
    from axr.eval.bench import LabelledScorer
    from axr.reasoning.caption_detector import CaptionVideo

    video = CaptionVideo("v", ["a man walks", "a man  walks", "a car drives", "a car drives"], [0, 0, 1, 0])
    assert LabelledScorer([video], noise=0).known(["a man walks", "a car drives"]) == {
        "a man walks": 0,
        "a car drives": 0.5,
    }
    noisy = LabelledScorer([video], noise=1.0).known(["a man walks", "a car drives"])
    assert noisy != {"a man walks": 0, "a car drives": 0.5}
