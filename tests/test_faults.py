"""Bad input through the entry points that take it: named in one line, skipped and recorded in a batch,
a non-zero exit when no input could be read; credentials in a server URL never written by a run."""

import json
from pathlib import Path

import yaml
from PIL import Image

from tests.conftest import run_axr

TINY = ["--backend", "hf", "--model", "tiny-qwen2.5-vl"]


def _folder(tmp_path: Path) -> Path:
    """Two good images, a 400:1 strip (over the 200:1 VLM processors take) and an animated GIF."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (64, 64), "gray").save(folder / "good.png")
    Image.new("RGB", (48, 40), "white").save(folder / "other.jpg")
    Image.new("RGB", (800, 2), "gray").save(folder / "strip.png")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return folder


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_400_to_1_image_is_skipped_and_recorded_by_caption_and_detect(tmp_path, tiny_vlm):
    folder = _folder(tmp_path)
    captions = tmp_path / "captions.jsonl"
    result = run_axr("caption", str(folder), *TINY, "--no-cache", "--out", str(captions))
    records = {r["sample_id"]: r for r in _lines(captions)}
    assert set(records) == {"good", "other", "strip", "moving"}  # the GIF is read (its first frame)
    assert "strip.png" in records["strip"]["error"] and "aspect ratio" in records["strip"]["error"]
    assert all("error" not in records[k] or "unparsed" in records[k]["error"] for k in ("good", "other", "moving"))
    assert "strip.png" in result.stderr
    alone = run_axr("caption", str(folder / "strip.png"), *TINY, "--out", str(tmp_path / "one.jsonl"), check=False)
    assert alone.returncode == 1 and "0 captioned, 0 from cache, 1 failed" in " ".join(alone.stderr.split())
    verdicts = tmp_path / "verdicts.jsonl"
    result = run_axr("detect", str(folder), "--direct", *TINY, "--out", str(verdicts))
    lines = {r["sample_id"]: r for r in _lines(verdicts)}
    assert set(lines) == {"good", "other", "strip", "moving"} and "aspect ratio" in lines["strip"]["error"]
    assert "1 unreadable inputs recorded" in result.stderr


def _run_as_dataset(folder: Path, run: Path) -> dict[str, dict]:
    """`axr eval run jsonl` over every file of the folder, plus a torn last line; its records by sample id."""
    rows = [{"sample_id": p.stem, "image_path": p.name, "gt_label": 0} for p in sorted(folder.iterdir())]
    (folder / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"sample_id": "torn", "ima')
    dataset = ["--data-dir", str(folder), "--set", "pipeline.max_tokens=32", "--output", str(run)]
    run_axr("eval", "run", "jsonl", *TINY, *dataset)
    return {r["sample_id"]: r for r in _lines(run / "predictions.jsonl")}


def test_a_400_to_1_image_in_a_dataset_is_an_error_record_and_the_run_goes_on(tmp_path, tiny_vlm):
    folder = _folder(tmp_path)
    records = _run_as_dataset(folder, tmp_path / "run")
    assert records["strip"]["status"] == "error" and "strip.png" in records["strip"]["error"]
    assert all(records[k]["status"] == "ok" for k in ("good", "other", "moving"))
    torn = records["samples.jsonl:5"]  # a broken line is recorded; the good ones still ran
    assert torn["status"] == "error" and "not JSON" in torn["error"]


def test_a_rule_book_with_a_yaml_error_is_one_line_with_line_and_column(tmp_path):
    book = tmp_path / "rules.yaml"
    book.write_text('name: x\nsections:\n  - name: a\n    normal: [ {id: n1, text: "walk"\n')
    (tmp_path / "c.txt").write_text("a person walks\n")
    result = run_axr("detect", str(tmp_path / "c.txt"), "--rules", str(book), check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "rules.yaml: not valid YAML (line 5, column 1: expected ',' or '}'" in result.stderr


def test_credentials_in_a_server_url_or_the_environment_never_reach_a_file_the_run_writes(tmp_path, textile_folder):
    from axr.reasoning.vllm_server import free_port

    rows = [{"sample_id": p.stem, "image_path": p.name, "gt_label": 0} for p in sorted(textile_folder.glob("*_*"))]
    (textile_folder / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:2]))
    url = f"http://alice:hunter2secret@127.0.0.1:{free_port()}/v1"  # nothing listens: every request fails
    run = tmp_path / "run"
    result = run_axr(
        "eval",
        "run",
        "jsonl",
        "--data-dir",
        str(textile_folder),
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        url,
        "--output",
        str(run),
        env={"OPENAI_API_KEY": "sk-keyfromtheenv"},
    )
    run_axr("eval", "report", str(run))
    records = _lines(run / "predictions.jsonl")
    assert len(records) == 2 and all(r["status"] == "error" and "***@127.0.0.1" in r["error"] for r in records)
    written = [p for p in run.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"predictions.jsonl", "metrics.json", "task.json", "report.html"}
    for secret in ("hunter2secret", "sk-keyfromtheenv"):
        assert not [p for p in written if secret in p.read_text(errors="replace")]
        assert secret not in result.stdout + result.stderr
    assert yaml.safe_load((run / "task.json").read_text())["pipeline"]["base_url"].startswith("http://***@")


def test_retries_through_a_faulty_proxy_answer_every_request_once(tmp_path, vllm_server):
    """48 requests through a proxy that drops connections (before and after the server answered), answers
    500, 503 and 429 with Retry-After, or holds the connection and then drops it, on 0-2 tries of each
    request: every request is answered, its tries are on the answer, and none is answered twice by the
    server. The per-try timeout is far above a healthy answer's time, so the outcome is the same on a fast
    machine or a loaded one."""
    from axr.eval.fault_proxy import FaultProxy
    from axr.reasoning.backends.base import Sampling, user
    from axr.reasoning.backends.openai_server import OpenAIBackend

    with FaultProxy(vllm_server.base_url, seed=7) as proxy:
        backend = OpenAIBackend(
            "smollm2", proxy.base_url, timeout_s=600, max_retries=4, backoff_s=0.05, supports_images=False
        )
        requests = [[user(f"Say the number {i}.")] for i in range(48)]
        arrived = []
        completions = backend.generate(requests, Sampling(max_tokens=4), on_answer=lambda i, c: arrived.append(i))
    assert all(c.error is None and c.text for c in completions)
    assert sorted(arrived) == list(range(48)) and arrived != sorted(arrived)  # each once, as it came back
    assert proxy.forwarded == 48  # each request reached the server once and its answer got through once
    schedules = [len(s) + 1 for s in proxy.schedules.values()]
    assert sorted(c.tries for c in completions) == sorted(schedules) and max(schedules) > 1
    assert set(proxy.injected) == {"drop_before", "drop_after", "500", "503", "429", "hang"}
    print(f"proxy: {sum(proxy.tries.values())} tries for 48 requests, faults {dict(proxy.injected)}")


def test_a_caption_recheck_through_a_faulty_proxy_journals_each_frame_once(tmp_path, vllm_server):
    from axr.eval.fault_proxy import FaultProxy
    from tests.captions_layout import synthetic_videos, write_caption_set
    from tests.test_caption_benchmark import BOOK

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    data_dir = write_caption_set(tmp_path / "captions", synthetic_videos(6, 12))
    run = tmp_path / "run"
    with FaultProxy(vllm_server.base_url, seed=0) as proxy:
        run_axr(
            *("eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(rules), "--recheck", "all"),
            *("--model", "smollm2", "--base-url", proxy.base_url, "--output", str(run)),
            *("--set", "pipeline.recheck.timeout_s=600"),  # no healthy answer times out, however loaded the machine
        )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["cost"]["request_errors"] == 0 and metrics["cost"]["frames_rechecked"] == 48
    [journal] = run.glob("recheck-*.jsonl")
    verdicts = _lines(journal)
    assert len({v["sample_id"] for v in verdicts}) == len(verdicts) == 48
    assert not [v for v in verdicts if "request_error" in v.get("meta", {})]  # no fault recorded as an answer
    assert sum(proxy.injected.values()) > 0 and max(v["meta"]["tries"] for v in verdicts) > 1


def _battery(folder: Path) -> tuple[dict[str, str], set[str]]:
    """Every kind of image file a user may hand over: {stem: what must appear in its error} for the bad ones,
    and the stems of the odd-but-valid ones every entry point must read."""
    import numpy as np

    folder.mkdir()
    good = Image.new("RGB", (64, 64), "gray")
    good.save(folder / "plain.png")
    (folder / "truncated.jpg").write_bytes((lambda b: b[: len(b) // 3])(_jpeg_bytes(good)))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is text, not a picture")
    Image.new("1", (20000, 20000)).save(folder / "bomb.png")  # 400 megapixels once decoded
    Image.new("RGB", (800, 2), "gray").save(folder / "strip.png")
    Image.new("CMYK", (40, 40), (0, 128, 0, 0)).save(folder / "cmyk.jpg")
    Image.fromarray(np.full((40, 40), 40000, dtype=np.uint16)).save(folder / "grey16.png")
    Image.new("RGBA", (40, 40), (255, 0, 0, 128)).save(folder / "alpha.png")
    Image.new("RGB", (1, 1), "white").save(folder / "dot.png")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    bad = {
        "truncated": "truncated.jpg",
        "empty": "empty.png: file is empty",
        "text": "text.png: not an image",
        "bomb": "bomb.png",
        "strip": "strip.png: aspect ratio",
    }
    return bad, {"plain", "cmyk", "grey16", "alpha", "dot", "moving"}


def _jpeg_bytes(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def test_the_bad_input_battery_through_every_image_entry_point(tmp_path, tiny_vlm):
    """caption, detect --direct, eval run, induce and train data take a folder with every kind of bad file:
    each bad one is recorded (induce: named) with what is wrong, every readable one is done; chat, given one
    bad file, exits 2 naming it in one line."""
    folder = tmp_path / "battery"
    bad, readable = _battery(folder)
    clear = {}
    captions = tmp_path / "captions.jsonl"
    run_axr("caption", str(folder), *TINY, "--no-cache", "--max-tokens", "16", "--out", str(captions))
    records = {r["sample_id"]: r for r in _lines(captions)}
    clear["caption"] = sum(why in records[stem].get("error", "") for stem, why in bad.items())
    assert clear["caption"] == len(bad) and readable <= records.keys()
    assert all(not records[s].get("error", "").startswith(tuple(bad.values())) for s in readable)
    verdicts = tmp_path / "verdicts.jsonl"
    run_axr("detect", str(folder), "--direct", *TINY, "--out", str(verdicts))
    lines = {r["sample_id"]: r for r in _lines(verdicts)}
    clear["detect"] = sum(why in lines[stem].get("error", "") for stem, why in bad.items())
    assert clear["detect"] == len(bad) and all("verdict" in lines[s] for s in readable)
    predicted = _run_as_dataset(folder, tmp_path / "run")
    clear["eval run"] = sum(why in predicted[stem].get("error", "") for stem, why in bad.items())
    assert clear["eval run"] == len(bad) and all(predicted[s]["status"] == "ok" for s in readable)
    book = tmp_path / "induced.yaml"
    result = run_axr(
        "induce", str(folder), *TINY, "--batches", "2", "--per-batch", "2", "--out", str(book), check=False
    )
    said = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    clear["induce"] = sum(any(why in line for line in said) for why in bad.values())
    assert clear["induce"] == len(bad) and len(said) == len(bad)  # the readable images were captioned and used
    sft = tmp_path / "sft"
    result = run_axr("train", "data", "jsonl", "--data-dir", str(folder), "--out", str(sft))
    said = {line.split(":", 1)[0].removeprefix("skipped "): line for line in result.stderr.splitlines()}
    clear["train data"] = sum(why in said.get(stem, "") for stem, why in bad.items())
    card = (sft / "README.md").read_text()
    assert clear["train data"] == len(bad) and all(f"  - {stem}: " in card for stem in bad)
    assert f"wrote {len(readable)} sft rows" in result.stderr  # every readable image became a row
    clear["chat"] = 0
    for stem, why in bad.items():
        path = next(folder.glob(f"{stem}.*"))
        result = run_axr("chat", str(path), check=False)
        said = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        clear["chat"] += result.returncode == 2 and len(said) == 1 and why in said[0]
    assert clear["chat"] == len(bad)
    print(f"battery: clear/total per entry point {clear} of {len(bad)} bad files, {len(readable)} odd-but-valid read")


def test_bad_task_rule_book_and_caption_files_are_one_line_each(tmp_path, tiny_vlm):
    """A task YAML carrying a Python object tag, a rule book without anomaly rules or with a YAML error, an
    empty caption file: refused in one line naming the file, whichever command reads them."""
    evil = tmp_path / "evil.yaml"
    evil.write_text('task: x\ninclude: !!python/object/apply:os.system ["echo pwned"]\n')
    for command, code in ((("eval", "validate"), 1), (("eval", "run"), 2)):
        result = run_axr(*command, str(evil), check=False)
        assert result.returncode == code and "evil.yaml: not valid YAML (line 2, column 10" in result.stderr
        assert "pwned" not in result.stdout + result.stderr
    captions, empty = tmp_path / "c.txt", tmp_path / "empty.txt"
    captions.write_text("a person walks\n")
    empty.write_text("")
    normal_only = tmp_path / "normal_only.yaml"
    normal_only.write_text(
        yaml.safe_dump({"name": "n", "sections": [{"name": "a", "normal": [{"id": "n1", "text": "walking"}]}]})
    )
    book = tmp_path / "book.yaml"
    book.write_text(
        yaml.safe_dump({"name": "b", "sections": [{"name": "a", "anomaly": [{"id": "a1", "text": "riding"}]}]})
    )
    image = tmp_path / "part.png"
    Image.new("RGB", (32, 32), "gray").save(image)
    (tmp_path / "samples.jsonl").write_text(json.dumps({"sample_id": "p", "image_path": "part.png"}) + "\n")
    torn = tmp_path / "torn.yaml"
    torn.write_text('name: x\nsections:\n  - name: a\n    normal: [ {id: n1, text: "walk"\n')
    jsonl_run = ("eval", "run", "jsonl", "--data-dir", str(tmp_path), *TINY, "--output", str(tmp_path / "r"))
    no_anomaly, not_yaml = "rule book 'n' has no enabled anomaly rules", "torn.yaml: not valid YAML (line 5"
    for args, message in (
        (("detect", str(captions), "--rules", str(normal_only)), no_anomaly),
        (("detect", str(image), "--direct", *TINY, "--rules", str(normal_only)), no_anomaly),
        (("chat", str(image), "--rules", str(normal_only)), no_anomaly),
        (("chat", str(image), "--rules", str(torn)), not_yaml),
        ((*jsonl_run, "--rules", str(normal_only)), no_anomaly),
        ((*jsonl_run, "--rules", str(torn)), not_yaml),
        (("detect", str(empty), "--rules", str(book)), "empty.txt: empty caption file"),
        (("induce", str(empty)), "empty.txt: empty caption file"),
    ):
        result = run_axr(*args, check=False)
        said = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and len(said) == 1 and message in said[0], result.stderr


def test_a_report_shows_only_images_inside_the_runs_dataset_folder(tmp_path):
    """A run folder's records name their media; a `../` path or a link leading out of the dataset folder
    the run's task.json names is not read into the report (a shared run folder cannot make the report embed
    any image on the reader's disk)."""
    from axr.eval.report import write_report
    from axr.eval.tasks import load_task

    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    run.mkdir()
    Image.new("RGB", (32, 32), "gray").save(data / "inside.png")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "private.png")
    (data / "link.png").symlink_to(tmp_path / "private.png")
    (run / "task.json").write_text(load_task("jsonl", overrides={"dataset.data_dir": str(data)}).public_json())
    media = {"inside": data / "inside.png", "dotdot": data / ".." / "private.png", "link": data / "link.png"}
    with (run / "predictions.jsonl").open("w") as sink:
        for sample_id, path in media.items():
            verdict = {"verdict": "normal", "score": 0.1}
            record = {"sample_id": sample_id, "media": str(path), "status": "ok", "gt_label": 0, "verdict": verdict}
            sink.write(json.dumps(record) + "\n")
    page = write_report([run], run / "report.html").read_text()
    cards = {c.split("'", 1)[0]: c for c in page.split("data-sample='")[1:]}
    assert set(cards) == set(media) and "data:image/jpeg" in cards["inside"]
    assert "data:image" not in cards["dotdot"] and "data:image" not in cards["link"]
    (run / "task.json").unlink()  # a folder that does not say where its data is shows no image at all
    assert "data:image" not in write_report([run], run / "report.html").read_text()
