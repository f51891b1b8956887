"""`axr eval run / validate / report` on image tasks with the tiny VLM through hf: resumable after SIGKILL,
shardable, bad samples recorded, MMAD multiple choice, clips, rendered series, and the report in Chromium."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from axr.eval.pipelines import validate_task
from axr.eval.records import PredictionRecord, verdict_fields
from axr.eval.runner import RunOptions
from axr.eval.runner import run as run_task
from axr.eval.samples import select_samples
from axr.eval.tasks import TASKS_DIR, all_tasks, load_task
from axr.reasoning.schema import Sample
from tests.conftest import REPO, open_in_chromium, run_axr, write_mp4

ARTIFACTS = Path(os.environ.get("AXR_TEST_ARTIFACTS", REPO / "test-artifacts"))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _task_file(tmp_path: Path, **overrides) -> Path:
    """A task that includes the shipped textile task, with overrides (deep-merged by `include:`)."""
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({"include": str(TASKS_DIR / "textile.yaml"), **overrides}))
    return path


def _jsonl_task(tmp_path: Path, rows: list[dict], **pipeline):
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    settings = {"backend": "hf", "model": "tiny-qwen2.5-vl", "max_tokens": 64, **pipeline}
    return load_task("jsonl", {"dataset.data_dir": str(tmp_path / "data"), **_prefixed("pipeline", settings)})


def _prefixed(prefix: str, settings: dict) -> dict:
    return {f"{prefix}.{key}": value for key, value in settings.items()}


def test_every_shipped_task_validates_and_validate_names_bad_fields(tmp_path):
    for name in all_tasks():
        errors, _ = validate_task(load_task(name))
        assert errors == [], name
    result = run_axr("eval", "validate")
    assert "ok   textile" in result.stderr and "ok   ped2" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "include": str(TASKS_DIR / "textile.yaml"),
                "metrics": ["auroc", "vibes"],
                "pipeline": {"backend": "magic"},
            }
        )
    )
    result = run_axr("eval", "validate", str(bad), check=False)
    assert result.returncode == 1
    assert "unknown vibes" in result.stderr and "'magic'" in result.stderr
    bad.write_text("task: [unclosed")
    result = run_axr("eval", "validate", str(bad), check=False)
    assert result.returncode == 1 and "bad.yaml" in result.stderr


def test_a_misspelt_or_invalid_task_field_fails_at_load_naming_file_and_field(tmp_path):
    from axr.eval.tasks import TaskError

    for pipeline, field in (
        ({"max_token": 64}, "pipeline.max_token: Extra inputs are not permitted"),
        ({"references": {"count": -1}}, "pipeline.references.count"),
        ({"mode": "vibes"}, "pipeline.mode must be one of direct, mcq, mcq_from_verdict, captions"),
    ):
        task = _task_file(tmp_path, pipeline=pipeline)
        with pytest.raises(TaskError, match=field) as caught:
            load_task(str(task))
        assert str(task) in str(caught.value)
    with pytest.raises(TaskError, match=r"pipeline.recheck.polcy: Extra inputs"):  # a caption task's own fields
        load_task("ped2", {"pipeline.recheck.polcy": "all"})
    result = run_axr("eval", "run", str(_task_file(tmp_path, dataset={"splt": "test"})), check=False)
    assert result.returncode == 2 and "dataset.splt: Extra inputs are not permitted" in result.stderr


def test_set_overrides_any_field_with_a_typed_value():
    task = load_task("shtech", {"split.scene_pattern": None, "pipeline.smoothing.window": 31})
    assert task.split.scene_pattern is None and task.pipeline.smoothing.window == 31
    task = load_task("textile", endpoint={"backend": "openai", "model": "m", "base_url": None})
    assert (task.pipeline.backend, task.pipeline.model, task.pipeline.base_url) == ("openai", "m", None)
    ped2 = load_task("ped2", endpoint={"model": "m"})
    assert ped2.pipeline.recheck.model == "m"  # a caption task's model is its re-check model
    from axr.eval.tasks import parse_assignment

    assert parse_assignment("split.scene_pattern=^test_(\\d+)_") == ("split.scene_pattern", "^test_(\\d+)_")
    assert parse_assignment("pipeline.batch=4") == ("pipeline.batch", 4)


def test_textile_run_and_report_open_in_chromium(tmp_path, tiny_vlm, chromium):
    run = tmp_path / "run"
    result = run_axr("eval", "run", "textile", "--limit", "24", "--output", str(run))
    summary = json.loads(result.stdout)
    assert summary["task"] == "textile" and summary["cost"]["model_calls"] >= 24
    records = _lines(run / "predictions.jsonl")
    assert len(records) == 24 and len({r["sample_id"] for r in records}) == 24
    assert all(r["status"] == "ok" and r["verdict"]["verdict"] in ("normal", "anomalous", "unparsed") for r in records)
    assert all(r["pred_label"] == {"normal": 0, "anomalous": 1}.get(r["verdict"]["verdict"]) for r in records)
    assert all(0 <= r["pred_score"] <= 1 for r in records)  # one record shape: scored like a caption frame
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"auroc", "f1_max", "doubly_right", "type_accuracy", "per_category_auroc"} <= metrics.keys()
    assert metrics["cost"]["tokens_in"] > 0 and metrics["samples"] == 24
    run_axr("eval", "report", str(run))
    ARTIFACTS.mkdir(exist_ok=True)
    dom = open_in_chromium(chromium, run / "report.html", tmp_path, screenshot=ARTIFACTS / "eval-report.png")
    assert 'id="summary"' in dom and "auroc" in dom
    assert 'id="roc"' in dom and 'id="pr"' in dom and "polyline" in dom
    assert 'class="confusion"' in dom
    assert dom.count('class="card ') == 24 and dom.count("data:image/jpeg;base64") == 24
    assert (ARTIFACTS / "eval-report.png").stat().st_size > 10_000
    other = _task_file(tmp_path, pipeline={"references": {"count": 0}})  # the same samples without a reference
    run_axr("eval", "run", str(other), "--limit", "24", "--output", str(tmp_path / "other"))
    run_axr("eval", "report", str(run), "--compare", str(tmp_path / "other"), "--out", str(tmp_path / "cmp.html"))
    dom = open_in_chromium(chromium, tmp_path / "cmp.html", tmp_path)
    assert 'id="compare"' in dom and "24 shared samples" in dom and "<th>other</th>" in dom
    assert dom.count('class="curve"') == 4  # both runs on the ROC and on the PR plot


@pytest.mark.slow
def test_sigkill_mid_run_resumes_to_identical_metrics(tmp_path, tiny_vlm):
    task = _task_file(tmp_path, pipeline={"batch": 4, "max_tokens": 48})
    command = [sys.executable, "-m", "axr", "eval", "run", str(task), "--limit", "120"]
    env = {**os.environ, "COLUMNS": "200"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, "--output", str(killed)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    predictions = killed / "predictions.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if predictions.is_file() and len(predictions.read_text().splitlines()) >= 12:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(_lines(predictions))
    assert 12 <= done_before < 120, "the run was not killed mid-way"
    resumed = run_axr(*command[3:], "--output", str(killed))
    assert f"resuming: {done_before} of 120" in resumed.stderr
    records = _lines(predictions)
    assert len(records) == 120 and len({r["sample_id"] for r in records}) == 120  # none lost, none duplicated
    run_axr(*command[3:], "--output", str(tmp_path / "clean"))
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (killed, tmp_path / "clean")]
    for m in metrics:
        m["cost"].pop("seconds")
    assert metrics[0] == metrics[1]


@pytest.fixture()
def images(tmp_path, textile_root):
    folder = tmp_path / "data"
    folder.mkdir()
    paths = sorted((textile_root / "nominal").glob("*.jpg"))[:3] + sorted((textile_root / "local").glob("*.jpg"))[:3]
    for path in paths:
        (folder / f"{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return folder


def test_bad_samples_are_recorded_the_run_goes_on_and_retry_fixes_them(tmp_path, images, hf_tiny):
    rows = [
        {"sample_id": p.stem, "image_path": p.name, "gt_label": int("local" in p.name)}
        for p in sorted(images.glob("*.jpg"))
    ]
    rows.append({"sample_id": "gone", "image_path": "gone.jpg", "gt_label": 0})
    task = _jsonl_task(images.parent, rows)
    metrics = run_task(task, tmp_path / "run", lambda: hf_tiny)
    records = {r["sample_id"]: r for r in _lines(tmp_path / "run" / "predictions.jsonl")}
    assert records["corrupt"]["status"] == "error" and "corrupt.jpg" in records["corrupt"]["error"]
    assert records["gone"]["status"] == "error" and "gone.jpg" in records["gone"]["error"]
    assert metrics["errors"] == 2 and sum(r["status"] == "ok" for r in records.values()) == 6
    Image.new("RGB", (64, 64), "gray").save(images / "corrupt.jpg")  # the user fixes the file
    counts = []
    run_task(task, tmp_path / "run", lambda: hf_tiny, on_progress=lambda *c: counts.append(c))
    assert counts == [(8, 8)]  # unreadable media is not retried by a plain rerun
    counts = []
    run_task(
        task, tmp_path / "run", lambda: hf_tiny, RunOptions(retry_errors=True), on_progress=lambda *c: counts.append(c)
    )
    assert counts[0] == (6, 8)  # only the two failed samples are run again
    records = {r["sample_id"]: r for r in _lines(tmp_path / "run" / "predictions.jsonl")}  # reopened: last wins
    assert records["corrupt"]["status"] == "ok" and records["gone"]["status"] == "error"


def test_shards_partition_the_samples_and_merge_without_model_calls(tmp_path, images, hf_tiny):
    rows = [
        {"sample_id": p.stem, "image_path": p.name, "gt_label": int("local" in p.name)}
        for p in sorted(images.glob("*_*.jpg"))
    ]
    task = _jsonl_task(images.parent, rows)
    for index in range(3):
        run_task(task, tmp_path / "run", lambda: hf_tiny, RunOptions(shard=(index, 3)))
    shards = [_lines(p) for p in sorted((tmp_path / "run").glob("predictions.shard-*.jsonl"))]
    ids = [r["sample_id"] for shard in shards for r in shard]
    assert len(shards) == 3 and sorted(ids) == sorted(r["sample_id"] for r in rows)  # a partition
    counts = []
    metrics = run_task(task, tmp_path / "run", lambda: hf_tiny, on_progress=lambda *c: counts.append(c))
    assert counts == [(6, 6)] and metrics["samples"] == 6  # merged, nothing recomputed
    empty = run_task(task, tmp_path / "empty", lambda: hf_tiny, RunOptions(limit=0))  # nothing to run is not an error
    assert empty["samples"] == 0 and (tmp_path / "empty" / "metrics.json").is_file()
    samples = [Sample(sample_id=str(i), caption="x") for i in range(10)]
    assert [s.sample_id for s in select_samples(samples, 4, (0, 1))] == [
        s.sample_id for s in select_samples(list(reversed(samples)), 4, (0, 1))
    ]  # the subset does not depend on the listing order


def test_mmad_multiple_choice_per_question_type(tmp_path, textile_root, hf_tiny):
    root = tmp_path / "mmad"
    (root / "imgs").mkdir(parents=True)
    nominal, local = (
        sorted((textile_root / "nominal").glob("*.jpg"))[:2],
        sorted((textile_root / "local").glob("*.jpg"))[:2],
    )
    for path in nominal + local:
        (root / "imgs" / path.name).write_bytes(path.read_bytes())
    questions = [
        {
            "Question": "Is there any defect?",
            "Answer": "A",
            "Options": {"A": "Yes.", "B": "No."},
            "type": "Anomaly Detection",
        },
        {
            "Question": "Where is the defect?",
            "Answer": "B",
            "Options": {"A": "Top", "B": "Bottom"},
            "type": "Defect Localization",
        },
    ]
    index = {
        f"imgs/{p.name}": {
            "image_path": f"imgs/{p.name}",
            "similar_templates": [f"imgs/{nominal[0].name}"],
            "conversation": questions,
        }
        for p in local
    }
    (root / "mmad.json").write_text(json.dumps(index))
    overrides = {"dataset.data_dir": str(root), "pipeline.backend": "hf", "pipeline.model": "tiny-qwen2.5-vl"}
    task = load_task("mmad", overrides)
    metrics = run_task(task, tmp_path / "run", lambda: hf_tiny)
    assert set(metrics["mmad_accuracy"]) == {"Anomaly Detection", "Defect Localization", "average"}
    records = _lines(tmp_path / "run" / "predictions.jsonl")
    assert len(records) == 4 and all(r["answer"] in ("A", "B", None) for r in records)
    assert metrics["unanswered"] == sum(r["answer"] is None for r in records)
    task = load_task("mmad_verdict", overrides)  # one verdict per image answers both of its questions
    metrics = run_task(task, tmp_path / "from-verdict", lambda: hf_tiny)
    assert metrics["cost"]["model_calls"] in (2, 3, 4) and len(local) == 2  # 2 images (+ at most a repair each)
    records = _lines(tmp_path / "from-verdict" / "predictions.jsonl")
    assert sum(r["cost"]["model_calls"] > 0 for r in records) == 2 and "average" in metrics["mmad_accuracy"]


def test_mmad_options_from_a_verdict_by_meaning():
    from axr.eval.pipelines.mcq_from_verdict import option_from_verdict
    from axr.reasoning.embedding import Embedder

    embedder = Embedder()
    verdict = {
        "verdict": "anomalous",
        "score": 0.9,
        "anomaly_type": "scratch",
        "evidence": [],
        "location": {"x0": 0.0, "y0": 0.0, "x1": 0.2, "y1": 0.2},
        "rationale": {
            "what": "a long thin scratch",
            "why": "the coating was scraped by a tool",
            "how": "it exposes bare metal and will rust",
        },
    }
    yes_no = {"A": "Yes.", "B": "No."}
    assert option_from_verdict("Anomaly Detection", yes_no, verdict, embedder) == "A"
    assert option_from_verdict("Anomaly Detection", yes_no, {**verdict, "verdict": "normal"}, embedder) == "B"
    kinds = {"A": "A hole in the surface", "B": "A scratch on the surface", "C": "A missing screw"}
    assert option_from_verdict("Defect Classification", kinds, verdict, embedder) == "B"
    where = {"A": "Bottom right", "B": "Top left", "C": "Center"}
    assert option_from_verdict("Defect Localization", where, verdict, embedder) == "B"
    assert option_from_verdict("Defect Analysis", kinds, {"verdict": "unparsed"}, embedder) is None


def test_clips_and_series_go_to_the_vlm_as_images(tmp_path, hf_tiny):
    root = tmp_path / "cuva"
    (root / "videos").mkdir(parents=True)
    for name in ("a", "b"):
        write_mp4(root / "videos" / f"{name}.mp4", 30)
    (root / "annotations.json").write_text(
        json.dumps(
            [
                {"video": "a", "type": "fall", "description": "a person falls", "cause": "ice", "result": "injury"},
                {"video": "b", "type": "fire", "description": "smoke rises", "cause": "a spark", "result": "damage"},
            ]
        )
    )
    settings = {"backend": "hf", "model": "tiny-qwen2.5-vl", "max_tokens": 64, "video": {"fps": 5, "frames": 4}}
    task = load_task("cuva", {"dataset.data_dir": str(root), **_prefixed("pipeline", settings)})
    metrics = run_task(task, tmp_path / "clips", lambda: hf_tiny)
    records = _lines(tmp_path / "clips" / "predictions.jsonl")
    assert metrics["errors"] == 0 and all(r["verdict"]["meta"]["tokens_in"] > 0 for r in records)
    assert records[0]["gt_rationale"]["why"] in ("ice", "a spark")
    csv_lines = ["timestamp,value,label"] + [f"{i},{(i % 7) / 7},{int(i > 90)}" for i in range(120)]
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "s.csv").write_text("\n".join(csv_lines))
    dataset = {"data_dir": str(tmp_path / "ts"), "options": {"window": 32, "stride": 16}}
    settings = {"backend": "hf", "model": "tiny-qwen2.5-vl", "max_tokens": 48}
    task = load_task("timeseries", {**_prefixed("dataset", dataset), **_prefixed("pipeline", settings)})
    metrics = run_task(task, tmp_path / "series", lambda: hf_tiny)
    assert metrics["errors"] == 0 and metrics["samples"] == 3  # windows starting at 48, 64, 80 (after the first 36)
    # one normal window of the same series is shown before each query: 2 images a request
    assert all(r["verdict"]["meta"]["references"] == 1 for r in _lines(tmp_path / "series" / "predictions.jsonl"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shard", "3/2"], "--shard '3/2': need 0 <= i < n"),
        (["--data-dir", "/nonexistent/mvtec"], "/nonexistent/mvtec: dataset folder does not exist"),
    ],
)
def test_run_bad_input_is_one_clear_line(args, message, tmp_path, tiny_vlm):
    result = run_axr(
        "eval",
        "run",
        "mvtec_ad",
        "--backend",
        "hf",
        "--model",
        "tiny-qwen2.5-vl",
        *args,
        "--output",
        str(tmp_path / "r"),
        check=False,
    )
    assert result.returncode == 2 and message in result.stderr


def test_a_server_that_is_down_is_recorded_per_sample_and_the_run_finishes(tmp_path, images):
    from axr.reasoning.backends.openai_server import OpenAIBackend
    from axr.reasoning.vllm_server import free_port

    rows = [{"sample_id": p.stem, "image_path": p.name, "gt_label": 0} for p in sorted(images.glob("*_*.jpg"))[:3]]
    task = _jsonl_task(images.parent, rows, backend="openai", model="m")
    backend = OpenAIBackend("m", f"http://127.0.0.1:{free_port()}/v1", timeout_s=2, max_retries=1, backoff_s=0.01)
    metrics = run_task(task, tmp_path / "run", lambda: backend)
    records = _lines(tmp_path / "run" / "predictions.jsonl")
    assert metrics["errors"] == 3 and all(r["status"] == "error" and "127.0.0.1" in r["error"] for r in records)
    assert metrics["cost"]["tokens_out"] == 0 and {r["error_kind"] for r in records} == {"request"}
    assert metrics["cost"]["request_errors"] == 3  # counted apart from unparsed answers
    counts = []
    run_task(task, tmp_path / "run", lambda: backend, on_progress=lambda *c: counts.append(c))
    assert counts[0] == (0, 3)  # a request that got no answer is asked again by any rerun


def test_report_cards_say_wrong_not_green_and_long_types_wrap(tmp_path, chromium):
    """A wrong "normal" verdict is marked wrong (red), not green like a right one; a 200-character anomaly
    type wraps inside its card instead of running into the next."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM_FLAGS

    run = tmp_path / "run"
    run.mkdir()
    rows = [
        ("missed", 1, {"verdict": "normal", "score": 0.1}),
        ("right", 0, {"verdict": "normal", "score": 0.1}),
        ("long", 1, {"verdict": "anomalous", "score": 0.9, "anomaly_type": "x" * 200}),
    ]
    with (run / "predictions.jsonl").open("w") as sink:
        for sample_id, truth, verdict in rows:
            record = PredictionRecord(sample_id=sample_id, gt_label=truth, **verdict_fields(verdict))
            sink.write(record.model_dump_json() + "\n")
    run_axr("eval", "report", str(run))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS[1:])
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto((run / "report.html").as_uri())

        def colour(sample_id: str) -> str:
            return page.eval_on_selector(
                f".card[data-sample='{sample_id}'] .verdict", "e => getComputedStyle(e).color"
            )

        assert colour("missed") == "rgb(187, 0, 0)" and colour("right") == "rgb(0, 102, 0)"
        assert "wrong:" in page.eval_on_selector(
            ".card[data-sample='missed'] .verdict", "e => getComputedStyle(e, '::before').content"
        )
        long_card = ".card[data-sample='long']"
        assert page.eval_on_selector(long_card, "e => e.scrollWidth <= e.clientWidth")
        page.screenshot(path=str(tmp_path / "cards.png"), full_page=True)
        browser.close()


def test_ray_options_without_the_ray_engine_are_refused_not_ignored():
    result = run_axr("eval", "run", "ped2", "--workers", "4", check=False)
    assert result.returncode == 2 and "add --engine ray" in result.stderr
