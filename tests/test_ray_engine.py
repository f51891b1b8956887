"""`axr eval run --engine ray` on a real local Ray cluster (CPU): the same predictions and metrics as the local
runner, an actor killed mid-run, the driver SIGKILLed mid-run and resumed, a caption re-check on Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_axr

pytest.importorskip("ray", reason="pip install 'axr[ray]'")

RAY = Path(sys.executable).parent / "ray"
TEXTILE = ["eval", "run", "textile", "--limit", "48"]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def _by_id(run: Path) -> dict[str, dict]:
    return {r["sample_id"]: r for r in _records(run)}


def _comparable(metrics: dict) -> dict:
    """The metrics without what differs by engine: the time taken and how the backend is described."""
    return {k: v for k, v in metrics.items() if k not in ("cost", "backend")} | {
        "cost": {k: v for k, v in metrics["cost"].items() if k != "seconds"}
    }


def _started(command: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "axr", *command],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= count:
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended first:\n{process.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {count} lines")


def _actor_pids(name: str) -> list[int]:
    """Processes whose title Ray set to `ray::<name>...` (an actor of that class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith(f"ray::{name}"):
                pids.append(int(entry.name))
    return pids


def test_ray_gives_the_local_runners_predictions_and_metrics(tmp_path, tiny_vlm, ray_head):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    run_axr(*TEXTILE, "--output", str(local))
    on_the_head = ["--engine", "ray", "--workers", "2", "--ray-address", ray_head]
    result = run_axr(*TEXTILE, *on_the_head, "--output", str(on_ray))
    assert "ray: 2 CPUs" in result.stderr
    mine, theirs = _by_id(local), _by_id(on_ray)
    assert len(_records(on_ray)) == 48 and mine.keys() == theirs.keys()
    assert all(mine[k]["verdict"] == theirs[k]["verdict"] for k in mine)  # greedy: the same answers
    local_metrics, ray_metrics = (json.loads((run / "metrics.json").read_text()) for run in (local, on_ray))
    assert _comparable(local_metrics) == _comparable(ray_metrics)
    assert ray_metrics["backend"]["engine"] == "ray" and ray_metrics["backend"]["workers"] == 2


def test_an_actor_killed_mid_run_loses_and_duplicates_nothing(tmp_path, tiny_vlm, ray_head):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    slow = ["--set", "pipeline.batch=1"]  # one sample a chunk: a run long enough to kill an actor inside it
    run_axr(*TEXTILE, *slow, "--output", str(local))
    command = [*TEXTILE, *slow, "--engine", "ray", "--workers", "2", "--ray-address", ray_head]
    process = _started([*command, "--output", str(on_ray)], tmp_path)
    _wait_for_lines(on_ray / "predictions.jsonl", 8, process)
    victims = _actor_pids("MapWorker")
    assert victims, "no actor process found"
    os.kill(victims[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    ids = [r["sample_id"] for r in _records(on_ray)]
    assert len(ids) == len(set(ids)) == 48
    assert _comparable(json.loads((on_ray / "metrics.json").read_text())) == _comparable(
        json.loads((local / "metrics.json").read_text())
    )


def test_a_driver_killed_mid_run_resumes_without_duplicates(tmp_path, tiny_vlm, ray_head):
    run = tmp_path / "run"
    command = [*TEXTILE, "--set", "pipeline.batch=1", "--engine", "ray", "--ray-address", ray_head]
    process = _started([*command, "--output", str(run)], tmp_path)
    _wait_for_lines(run / "predictions.jsonl", 6, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(_records(run))
    assert 6 <= done < 48
    result = run_axr(*command, "--output", str(run))
    assert f"resuming: {done} of 48" in result.stderr
    ids = [r["sample_id"] for r in _records(run)]
    assert len(ids) == len(set(ids)) == 48


def test_caption_recheck_on_ray_through_the_server(tmp_path, vllm_server, ray_head):
    import yaml

    from tests.captions_layout import synthetic_videos, write_caption_set
    from tests.test_caption_benchmark import BOOK

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    data_dir = write_caption_set(tmp_path / "captions", synthetic_videos(6, 12))
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules), "--recheck", "all"]
    server = ["--base-url", vllm_server.base_url, "--model", "smollm2"]
    run_axr(
        *args, *server, "--engine", "ray", "--workers", "2", "--ray-address", ray_head, "--output", str(tmp_path / "r")
    )
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["cost"]["frames_rechecked"] == 48 and metrics["cost"]["request_errors"] == 0
    verdicts = [r["verdict"] for r in _records(tmp_path / "r")]
    assert all(v and v["verdict"] in ("normal", "anomalous", "unparsed") for v in verdicts)
    assert sum(v["verdict"] != "unparsed" for v in verdicts) >= 40  # structured output through the pool


def test_caption_scoring_and_event_explanations_on_ray_through_the_server(tmp_path, vllm_server, ray_head):
    import yaml

    from tests.captions_layout import synthetic_videos, write_caption_set
    from tests.test_caption_benchmark import BOOK

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    data_dir = write_caption_set(tmp_path / "captions", synthetic_videos(6, 12))
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules)]
    args += ["--set", "pipeline.scoring.policy=all", "--set", "pipeline.events.explain=true"]
    args += ["--base-url", vllm_server.base_url, "--model", "smollm2", "--engine", "ray", "--workers", "2"]
    args += ["--ray-address", ray_head, "--output", str(tmp_path / "r")]
    run_axr(*args, env={"AXR_CACHE": str(tmp_path / "cache")})
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    # every distinct caption scored once through the pool, each frame carrying its caption's P(yes)
    scoring = metrics["scoring"]
    assert scoring["asked_this_run"] == 5 and scoring["unanswered"] == 0 and scoring["tokens_out_per_frame"] < 1
    assert all(0 <= r["trigger"]["model_score"] <= 1 for r in _records(tmp_path / "r"))
    assert set(scoring["frame_auc_pooled"]) == {"trigger", "model", "fused"}
    # one generated explanation per detected event
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    assert events and len(events) == metrics["events"]["events"]
    assert all(e["verdict"]["verdict"] in ("normal", "anomalous", "unparsed") for e in events)
    assert metrics["events"]["unanswered"] == 0


def _vllm_task(textile_root):
    from axr.eval.tasks import load_task

    return load_task("textile", {"pipeline.backend": "vllm", "pipeline.references.count": 1, "pipeline.batch": 2})


def test_ray_data_llm_rows_carry_axr_requests_through_arrow_and_back_into_records(textile_root, tiny_vlm, ray_head):
    """What ray.data.llm's vLLM processor is given and what comes back, built and read on CPU (the engine
    itself needs a GPU): requests as OpenAI chats with the references and query as images, the verdict schema
    as structured output, through Ray Data's Arrow columns; answers, unparsed answers, bad media -> records."""
    import ray

    from axr.eval.ray_llm import RecordBuilder, RequestBuilder, processor_config
    from axr.eval.samples import load_task_samples
    from axr.reasoning.schema import Sample, VerdictAnswer, json_schema

    task = _vllm_task(textile_root)
    samples = load_task_samples(task)[:2] + [Sample(sample_id="gone", image_path="/no/such.png", gt_label=1)]
    rows = [RequestBuilder(task)({"sample": s.model_dump_json()}) for s in samples]
    chat = rows[0]["messages"]
    assert chat[0]["role"] == "system" and "woven textile" in chat[0]["content"][0]["text"]
    images = [p for p in chat[1]["content"] if p["type"] == "image_url"]
    assert len(images) == 2 and images[0]["image_url"]["url"].startswith("data:image/")  # reference, then query
    params = rows[0]["sampling_params"]
    assert json.loads(params["structured_outputs"]["json"]) == json_schema(VerdictAnswer)
    assert (
        params["max_tokens"] == task.pipeline.max_tokens
        and rows[2]["error"]
        and rows[2]["sampling_params"]["max_tokens"] == 1
    )
    ray.init(address=ray_head, logging_level="ERROR")
    try:
        carried = ray.data.from_items(rows).take_all()  # what the processor's stages receive
        config = processor_config(task, workers=2)
        assert config.concurrency == 2 and config.batch_size == 2 and config.should_continue_on_error
    finally:
        ray.shutdown()
    carried_images = [p["image_url"]["url"] for p in carried[0]["messages"][1]["content"] if p["type"] == "image_url"]
    assert carried_images == [p["image_url"]["url"] for p in images]  # the images survive Arrow unchanged
    answer = {
        "evidence": ["a hole"],
        "rules_matched": [],
        "verdict": "anomalous",
        "score": 0.9,
        "anomaly_type": "hole",
    }
    builder = RecordBuilder(task)
    good = json.loads(
        builder({**carried[0], "generated_text": json.dumps(answer), "num_generated_tokens": 30})["record"]
    )
    assert good["status"] == "ok" and good["pred_label"] == 1 and good["verdict"]["meta"]["tokens_out"] == 30
    bad = json.loads(builder({**carried[1], "generated_text": "not json"})["record"])
    assert bad["status"] == "ok" and bad["verdict"]["verdict"] == "unparsed" and bad["pred_label"] is None
    gone = json.loads(builder({**carried[2], "generated_text": ""})["record"])
    assert gone["status"] == "error" and "/no/such.png" in gone["error"]


@pytest.mark.gpu
def test_ray_data_llm_runs_the_vllm_backend_on_a_gpu(tmp_path, tiny_vlm):
    pytest.importorskip("vllm", reason="the GPU run needs vLLM (axr[vllm])")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    run = tmp_path / "run"
    run_axr(*TEXTILE, "--engine", "ray", "--backend", "vllm", "--model", str(tiny_vlm), "--output", str(run))
    records = _records(run)
    assert len(records) == 48 and all(r["status"] == "ok" for r in records)


def test_bench_task_compares_the_local_runner_and_ray_on_the_same_samples(tmp_path, tiny_vlm, ray_head):
    out = tmp_path / "rows.json"
    settings = ["--setting", "engine=local", "--setting", f"engine=ray,workers=2,ray_address={ray_head}"]
    result = run_axr("eval", "bench", "task", "textile", *settings, "--limit", "8", "--out", str(out))
    local, on_ray = json.loads(out.read_text())
    assert (local["setting"], on_ray["setting"]) == ("engine=local", f"engine=ray,workers=2,ray_address={ray_head}")
    assert local["samples"] == on_ray["samples"] == 8 and local["tokens_in"] == on_ray["tokens_in"]
    assert "the samples/s of engine=local" in result.stdout


def test_a_caption_task_on_ray_runs_through_the_same_runner(tmp_path, ray_head):
    import yaml

    from tests.captions_layout import synthetic_videos, write_caption_set
    from tests.test_caption_benchmark import BOOK

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    data_dir = write_caption_set(tmp_path / "captions", synthetic_videos(6, 12))
    args = ["eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules), "--limit", "3"]
    run_axr(*args, "--output", str(tmp_path / "local"))
    result = run_axr(*args, "--engine", "ray", "--ray-address", ray_head, "--output", str(tmp_path / "ray"))
    assert "ray: 2 CPUs" in result.stderr
    local, on_ray = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("local", "ray"))
    assert _comparable(local) == _comparable(on_ray) and on_ray["split"]["evaluated_videos"] == 3
