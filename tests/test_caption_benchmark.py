"""`axr eval run` on caption sets: synthetic sets in the real layout, the real ped2 captions, a real re-check."""

import json

import pytest
import yaml

from axr.eval.runner import run
from axr.eval.tasks import TaskError, load_task
from tests.captions_layout import synthetic_videos, write_caption_set
from tests.conftest import open_in_chromium, run_axr

BOOK = {
    "name": "walkway",
    "sections": [
        {
            "name": "human activity",
            "normal": [{"id": "n1", "text": "Walking on the pathway"}],
            "anomaly": [{"id": "a1", "text": "Riding a bicycle or skateboard"}, {"id": "a2", "text": "Fighting"}],
        }
    ],
}


@pytest.fixture()
def caption_set(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    return write_caption_set(tmp_path / "captions", synthetic_videos(6, 12)), rules


def test_trigger_stage_run_writes_predictions_and_metrics(caption_set, tmp_path):
    data_dir, rules = caption_set
    overrides = {"dataset.data_dir": str(data_dir), "pipeline.rules": str(rules)}
    task = load_task("captions", {**overrides, "pipeline.trigger.novelty": False, "pipeline.smoothing.window": 3})
    metrics = run(task, tmp_path / "run", backend=None, on_message=lambda m: None)
    assert metrics["frame_auc_pooled"] == 1.0
    assert metrics["split"]["reference_videos"] == ["test_00", "test_03"]
    assert metrics["frames"] == 4 * 12 and metrics["cost"]["model_calls"] == 0
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 48 and len({json.loads(x)["sample_id"] for x in lines}) == 48
    hit = next(json.loads(x) for x in lines if json.loads(x)["trigger"]["keyword_hits"])
    assert hit["trigger"]["keyword_hits"].keys() == {"a1"} and hit["gt_label"] == 1
    assert {"pred_score", "pred_label", "verdict", "status"} <= hit.keys() and hit["verdict"] is None  # no re-check
    assert (tmp_path / "run" / "rulebook.yaml").is_file()


def test_task_include_and_errors(tmp_path):
    task = load_task("ped2")
    assert task.task == "ped2" and task.pipeline.smoothing.method == "mean"  # from captions.yaml
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        load_task("nope")
    loop = tmp_path / "loop.yaml"
    loop.write_text("include: loop.yaml\n")
    with pytest.raises(TaskError, match="includes itself"):
        load_task(str(loop))


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--rules", "/no/rules.txt"), "rule file not found"),
        (("--data-dir", "/no/such/dir"), "missing folder test_frame_description/"),
    ],
)
def test_cli_bad_input_one_line(extra, message, caption_set, tmp_path):
    data_dir, rules = caption_set
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules), *extra]
    result = run_axr(*args, "--output", str(tmp_path / "out"), check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_a_video_whose_labels_do_not_match_its_captions_is_skipped_and_named(caption_set, tmp_path):
    data_dir, rules = caption_set
    (data_dir / "test_frame" / "test_05.csv").write_text("image_path,label\nx,0\n")  # 12 captions, 1 label
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules)]
    result = run_axr(*args, "--set", "pipeline.trigger.novelty=false", "--output", str(tmp_path / "out"))
    assert "skipped a video:" in result.stderr and "test_05.txt: 12 caption lines but 1 labels" in result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    [skipped] = metrics["split"]["skipped_videos"]
    assert "test_05.txt: 12 caption lines but 1 labels in test_05.csv" in skipped
    assert metrics["split"]["evaluated_videos"] == 3 and metrics["frames"] == 36  # the five good videos ran


def test_recheck_with_smollm2_through_the_server_and_its_report(caption_set, tmp_path, vllm_server, chromium):
    data_dir, rules = caption_set
    server = ["--base-url", vllm_server.base_url, "--model", "smollm2"]
    result = run_axr(
        "eval",
        "run",
        "captions",
        "--data-dir",
        str(data_dir),
        "--rules",
        str(rules),
        "--recheck",
        "all",
        *server,
        "--output",
        str(tmp_path / "run"),
    )
    assert "re-check" in result.stderr and "48/48" in result.stderr  # the progress bar reached the end
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["cost"]["frames_rechecked"] == 48 and metrics["cost"]["share_rechecked"] == 1.0
    assert metrics["cost"]["tokens_in"] > 0
    records = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    verdicts = [r["verdict"] for r in records]
    assert all(v["verdict"] in ("normal", "anomalous", "unparsed") for v in verdicts)
    assert sum(v["verdict"] != "unparsed" for v in verdicts) >= 40  # structured output through the server
    assert all(set(v.get("rules_matched", [])) <= {"n1", "a1", "a2"} for v in verdicts)
    run_axr("eval", "report", str(tmp_path / "run"))
    dom = open_in_chromium(chromium, tmp_path / "run" / "report.html", tmp_path)
    assert 'id="timelines"' in dom and dom.count('class="timeline"') == 4  # the four held-out videos
    assert 'id="roc"' in dom and dom.count('class="card ') == 48


def test_ped2_trigger_stage_with_the_papers_rule_book(tmp_path):
    result = run_axr("eval", "run", "ped2", "--output", str(tmp_path / "ped2"))
    assert "on 8 held-out videos; published (AnomalyRuler" in " ".join(result.stderr.split())
    metrics = json.loads((tmp_path / "ped2" / "metrics.json").read_text())
    assert metrics["frame_auc_pooled"] > 0.975  # 0.980 measured; the paper's full method reports 0.979
    assert metrics["split"]["evaluated_videos"] == 8


@pytest.mark.parametrize("name", ["captions", "ped2", "shtech", "avenue", "ubnormal", "ucf-crime"])
def test_every_shipped_caption_task_loads(name):
    task = load_task(name)
    assert task.mode == "captions" and task.metrics and task.split.reference_every == 3
    assert task.pipeline.recheck.policy in ("none", "uncertain", "positives", "all")


def test_journal_skips_a_torn_line_and_never_duplicates(tmp_path):
    from axr.reasoning.journal import Journal

    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append([{"sample_id": "a", "v": 1}, {"sample_id": "b", "v": 2}])
    with path.open("a") as sink:
        sink.write('{"sample_id": "c", "v"')  # a run killed mid-write
    again = Journal(path)
    assert set(again.records) == {"a", "b"} and "c" not in again
    again.append([{"sample_id": "a", "v": 9}, {"sample_id": "c", "v": 3}])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["sample_id"] for x in lines] == ["a", "b", "c"] and lines[0]["v"] == 1


def test_interrupted_recheck_resumes_without_redoing(caption_set, tmp_path, vllm_server):
    """Run, then drop half of the journaled verdicts (as a killed run would have) and run again."""
    data_dir, rules = caption_set
    args = [
        "eval",
        "run",
        "captions",
        "--data-dir",
        str(data_dir),
        "--rules",
        str(rules),
        "--recheck",
        "all",
        "--base-url",
        vllm_server.base_url,
        "--model",
        "smollm2",
        "--output",
        str(tmp_path / "run"),
    ]
    run_axr(*args)
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())
    [journal] = list((tmp_path / "run").glob("recheck-*.jsonl"))
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:20]) + "\n" + lines[20][:15])  # 20 kept, one torn, the rest lost
    run_axr(*args)
    second = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert second["cost"]["resumed"] == 20 and second["cost"]["model_calls"] >= 28
    assert second["frame_auc_pooled"] == first["frame_auc_pooled"]
    keys = [json.loads(x)["sample_id"] for x in journal.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 48


def test_scene_of_reads_the_camera_from_the_video_name():
    from axr.reasoning.caption_detector import scene_of

    assert scene_of("test_01_0014", r"^test_(\d+)_") == "01"
    assert scene_of("test_01", r"^test_(\d+)_") == "all"
    assert scene_of("test_01_0014", None) == "all"


def test_detect_and_eval_run_agree_on_the_same_captions(tmp_path):
    """One caption detector: `axr detect` on the held-out videos with the reference videos as --reference gets
    the scores and labels `axr eval run` gets, threshold calibrated on the references by both."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    data_dir = write_caption_set(tmp_path / "captions", synthetic_videos(6, 240))
    run_axr(
        "eval",
        "run",
        "captions",
        "--data-dir",
        str(data_dir),
        "--rules",
        str(rules),
        "--output",
        str(tmp_path / "run"),
    )
    captions = data_dir / "test_frame_description"
    references = [a for name in ("test_00", "test_03") for a in ("--reference", str(captions / f"{name}.txt"))]
    held_out = [str(captions / f"test_{v:02d}.txt") for v in (1, 2, 4, 5)]
    out = tmp_path / "verdicts.jsonl"
    run_axr("detect", *held_out, "--rules", str(rules), *references, "--out", str(out))
    benchmark = {
        r["sample_id"]: r for r in map(json.loads, (tmp_path / "run" / "predictions.jsonl").read_text().splitlines())
    }
    verdicts = {v["sample_id"]: v for v in map(json.loads, out.read_text().splitlines())}
    assert verdicts.keys() == benchmark.keys() and len(verdicts) == 4 * 240
    assert all(verdicts[k]["meta"]["smoothed_score"] == round(benchmark[k]["pred_score"], 4) for k in verdicts)
    assert all((verdicts[k]["verdict"] == "anomalous") == bool(benchmark[k]["pred_label"]) for k in verdicts)
    assert 0 < sum(r["pred_label"] for r in benchmark.values()) < len(benchmark)  # both labels occur


def test_a_recheck_the_server_never_answered_is_retried_not_recorded(caption_set, tmp_path, vllm_server):
    """Nothing listens at first: no verdict is journaled, the frames keep their trigger scores, and the same
    command against a live server re-checks every one of them."""
    data_dir, rules = caption_set
    args = [
        "eval",
        "run",
        "captions",
        "--data-dir",
        str(data_dir),
        "--rules",
        str(rules),
        "--recheck",
        "all",
        "--model",
        "smollm2",
        "--output",
        str(tmp_path / "run"),
    ]
    down = run_axr(*args, "--base-url", "http://127.0.0.1:9/v1")
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert first["cost"]["request_errors"] == 48 and first["cost"]["unparsed"] == 0
    assert "48 requests got no answer" in down.stderr and "run the same command again" in down.stderr
    assert all(
        not line.strip() for j in (tmp_path / "run").glob("recheck-*.jsonl") for line in j.read_text().splitlines()
    )
    run_axr(*args, "--base-url", vllm_server.base_url)
    second = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert second["cost"]["request_errors"] == 0 and second["cost"]["resumed"] == 0
    assert second["cost"]["frames_rechecked"] == 48 and second["cost"]["model_calls"] >= 48


def _frames(run) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]


def test_caption_runs_take_limit_shard_and_resume_by_video(caption_set, tmp_path):
    """The runner's options work on caption tasks as on any other: whole held-out videos are chosen."""
    data_dir, rules = caption_set
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules)]
    args += ["--set", "pipeline.trigger.novelty=false"]
    run_axr(*args, "--output", str(tmp_path / "all"))
    whole = json.loads((tmp_path / "all" / "metrics.json").read_text())
    run_axr(*args, "--limit", "2", "--output", str(tmp_path / "two"))
    assert len({r["video"] for r in _frames(tmp_path / "two")}) == 2 and len(_frames(tmp_path / "two")) == 24
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["split"]["evaluated_videos"] == 2
    sharded = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        run_axr(*args, "--shard", shard, "--output", str(sharded))
    halves = [json.loads(line)["video"] for f in sharded.glob("predictions.shard-*.jsonl") for line in f.open()]
    assert len(halves) == 48 and len(set(halves)) == 4  # every held-out video in exactly one shard
    resumed = run_axr(*args, "--output", str(sharded))  # unsharded: takes in the shards, predicts nothing
    assert "resuming: 4 of 4 samples already done" in resumed.stderr
    merged = json.loads((sharded / "metrics.json").read_text())
    assert merged["frame_auc_pooled"] == whole["frame_auc_pooled"] and merged["frames"] == whole["frames"]


def test_an_unreadable_caption_video_is_an_error_record_retried_with_retry_errors(caption_set, tmp_path):
    data_dir, rules = caption_set
    labels = data_dir / "test_frame" / "test_05.csv"
    good = labels.read_text()
    labels.write_text("image_path,label\nx,0\n")  # 12 captions, 1 label
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules)]
    args += ["--set", "pipeline.trigger.novelty=false", "--output", str(tmp_path / "run")]
    run_axr(*args)
    [error] = [r for r in _frames(tmp_path / "run") if r["status"] == "error"]
    assert error["sample_id"] == "test_05" and error["error_kind"] == "media" and "1 labels" in error["error"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["errors"] == 1
    labels.write_text(good)
    assert "resuming: 4 of 4" in run_axr(*args).stderr  # a plain rerun leaves unreadable media alone
    run_axr(*args, "--retry-errors")
    frames = _frames(tmp_path / "run")
    assert all(r["status"] == "ok" for r in frames) and sum(r["video"] == "test_05" for r in frames) == 12
    assert len(frames) == len({r["sample_id"] for r in frames})
