"""Images of defects: the visual gate, gated direct detection, chat sessions (Python and terminal), and the
web UI driven in headless Chromium, with the tiny VLM (hf) and SmolLM2 (vLLM server) for text turns."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from axr.reasoning.chat import Chat, ChatError, Session
from axr.reasoning.visual_gate import GateResult, calls_saved_at_recall, coreset, gate_mask, parse_gate
from tests.conftest import CHROMIUM_FLAGS, REPO, run_axr

ARTIFACTS = Path(os.environ.get("AXR_TEST_ARTIFACTS", REPO / "test-artifacts"))
DOCS_PICTURE = REPO / "docs" / "assets" / "ui-verdict.png"  # kept current by the UI test


@pytest.fixture(scope="module")
def textile(textile_root):
    return {kind: sorted((textile_root / kind).glob("*.jpg")) for kind in ("nominal", "local", "global")}


@pytest.fixture()
def bad_images(tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is text, not a picture")
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)  # 400 megapixels: a decompression bomb when opened
    return {"not_image": not_image, "huge": huge, "missing": tmp_path / "nowhere.png"}


def test_gate_pieces_by_hand():
    assert gate_mask([0.1, 0.9, 0.5, 0.3], threshold=0.4).tolist() == [False, True, True, False]
    assert gate_mask([0.1, 0.9, 0.5, 0.3], top=0.5).tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="either a threshold or a top"):
        gate_mask([0.1], threshold=0.1, top=0.5)
    assert parse_gate("top:0.3") == {"top": 0.3} and parse_gate("0.4") == {"threshold": 0.4}
    with pytest.raises(ValueError, match="expected a threshold"):
        parse_gate("lots")
    saved = calls_saved_at_recall([0, 0, 0, 1, 1], [0.1, 0.2, 0.9, 0.5, 0.8], recall=1.0)
    assert saved["threshold"] == 0.5 and saved["share_sent_to_vlm"] == 0.6 and saved["recall"] == 1.0
    points = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [10, 0]])
    assert len({tuple(p) for p in coreset(points, 3)}) == 3  # k-center spreads out: one per cluster
    result = GateResult(0.9, np.array([[0.0, 0.1], [0.2, 0.9]]))
    assert result.hint().startswith("the most unusual region is the bottom right")
    assert result.heatmap(Image.new("RGB", (40, 30))).size == (40, 30)


def test_gate_on_real_vlm_features_and_its_benchmark(textile, tiny_vlm, tmp_path):
    from axr.reasoning.visual_gate import MemoryBank, PatchFeatures

    features = PatchFeatures(str(tiny_vlm))
    grids = features([Image.open(p) for p in textile["nominal"][:2]])
    assert grids[0].ndim == 3 and grids[0].shape[-1] == 64  # (rows, cols, dim) from the vision encoder
    normals = [Image.open(p) for p in textile["nominal"][:4]]
    assert MemoryBank(features, bank_size=32).fit(normals).bank.shape == (32, 64)  # the coreset keeps 32 patches
    seen, unseen = MemoryBank(features).fit(normals).score([normals[0], Image.open(textile["local"][0])])
    assert seen.score < 1e-3 < unseen.score  # every patch of a bank image is in the bank: distance 0
    out = tmp_path / "gate.json"
    result = run_axr("eval", "bench", "gate", "--references", "10", "--limit", "40", "--out", str(out))
    row = json.loads(out.read_text())
    assert row["test_images"] == 40 and 0 <= row["auroc"] <= 1 and len(row["at_recall"]) == 3
    assert "random weights" in result.stdout


def test_gated_direct_detect_sends_only_what_the_gate_passes(textile, tmp_path, tiny_vlm):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in textile["nominal"][300:303] + textile["local"][:3]:
        (folder / f"{path.parent.name}_{path.name}").write_bytes(path.read_bytes())
    refs = [arg for p in textile["nominal"][:3] for arg in ("--reference", str(p))]
    out = ["--out", str(tmp_path / "v.jsonl"), "--subject", "object"]
    result = run_axr(
        "detect",
        str(folder),
        "--direct",
        *refs,
        "--gate",
        "top:0.5",
        "--hint",
        "--retrieve",
        "2",
        "--draw",
        str(tmp_path / "drawn"),
        *out,
    )
    assert "visual gate: 3 of 6 images sent to the VLM" in result.stderr
    verdicts = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    gated = [v for v in verdicts if v["meta"].get("stage") == "gate"]
    sent = [v for v in verdicts if v["meta"].get("stage") == "direct"]
    assert len(gated) == 3 and len(sent) == 3 and all(v["verdict"] == "normal" for v in gated)
    assert all(v["meta"]["references"] == 2 for v in sent)  # --retrieve 2 of the 3 references
    assert min(v["meta"]["gate_score"] for v in sent) >= max(v["meta"]["gate_score"] for v in gated)
    assert len(list((tmp_path / "drawn").glob("*.map.png"))) == 6
    bad = run_axr(
        "detect", str(folder), "--direct", *refs, "--gate", "lots", "--out", str(tmp_path / "x"), check=False
    )
    assert bad.returncode == 2 and "expected a threshold" in bad.stderr


def test_chat_session_bad_inputs_verdict_and_save_load(textile, bad_images, hf_tiny, tmp_path):
    chat = Chat(hf_tiny, domain="woven textile")
    for path in bad_images.values():
        with pytest.raises(ChatError):
            chat.add_image(str(path))
    assert chat.session.images == []  # nothing bad got in
    with pytest.raises(ChatError, match="no query image"):
        chat.verdict()
    chat.add_image(str(textile["local"][0]))
    small = tmp_path / "small.png"
    Image.open(textile["nominal"][0]).resize((100, 80)).save(small)
    assert "differs from the query" in chat.add_reference(str(small))
    assert chat.add_reference(str(textile["nominal"][1])) is None
    with pytest.raises(ChatError, match="empty message"):
        chat.ask("   ")
    with pytest.raises(ChatError, match="returned nothing"):  # the random tiny model writes only newlines
        chat.ask("What is wrong?")
    assert chat.session.history == []  # a failed turn leaves no trace
    verdict = chat.verdict()
    assert verdict.verdict in ("normal", "anomalous") and chat.session.verdict["verdict"] == verdict.verdict
    chat.session.save(tmp_path / "s.json")
    again = Chat(hf_tiny, Session.load(tmp_path / "s.json"))
    assert again.session == chat.session
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ChatError, match="not a saved AXR chat session"):
        Session.load(tmp_path / "bad.json")


def test_terminal_text_turns_with_smollm2_through_the_server(textile, vllm_server, tmp_path):
    script = (
        "What could a defect in woven fabric look like?\nAnd how would you check for it?\n/verdict\n"
        f"/save {tmp_path / 's.json'}\n"
    )
    command = [
        sys.executable,
        "-m",
        "axr",
        "chat",
        str(textile["local"][0]),
        "--backend",
        "openai",
        "--model",
        "smollm2",
        "--base-url",
        vllm_server.base_url,
        "--text-only",
    ]
    result = subprocess.run(
        command, input=script, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("axr> ") == 2 and "reads text only" in result.stderr
    history = json.loads((tmp_path / "s.json").read_text())["history"]
    assert [turn["role"] for turn in history] == ["user", "assistant"] * 2 and all(t["content"] for t in history)


def test_terminal_chat_commands_and_bad_input(textile, bad_images, tmp_path, tiny_vlm):
    small = tmp_path / "small.png"
    Image.open(textile["nominal"][1]).resize((100, 80)).save(small)
    script = "\n".join(
        [
            "",
            "/verdict",
            f"/image {bad_images['huge']}",
            f"/ref {bad_images['not_image']}",
            f"/ref {textile['nominal'][0]}",
            f"/ref {small}",
            "what is wrong?",
            "/bogus",
            f"/save {tmp_path / 's.json'}",
            f"/load {tmp_path / 's.json'}",
            "/quit",
        ]
    )
    command = [sys.executable, "-m", "axr", "chat", str(textile["local"][0])]
    result = subprocess.run(
        command, input=script, capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert "empty message" in result.stderr
    assert '"verdict": "' in result.stdout
    assert "huge.png" in result.stderr and "notes.png" in result.stderr  # each bad file named, the chat goes on
    assert "differs from the query" in result.stdout and "returned nothing" in result.stderr
    assert "unknown command /bogus" in result.stdout and "saved" in result.stdout and "loaded" in result.stdout
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["references"] == [str(textile["nominal"][0]), str(small)] and saved["verdict"]["verdict"]
    missing = run_axr("chat", str(bad_images["missing"]), check=False)
    assert missing.returncode == 2 and "nowhere.png" in missing.stderr


def _start_ui(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen, str]:
    from axr.reasoning.vllm_server import free_port

    port = free_port()
    log = (tmp_path / "ui.log").open("w")
    command = [sys.executable, "-m", "axr", "ui", "--port", str(port), *args]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    import httpx

    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return process, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.5)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"axr ui did not start:\n{(tmp_path / 'ui.log').read_text()[-2000:]}")


def _page(playwright):
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS[1:])
    return browser, browser.new_page(viewport={"width": 1300, "height": 1000})


def _status(page, text: str):
    page.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text, timeout=60000)


def test_web_ui_upload_chat_verdict_and_bad_inputs(textile, bad_images, tmp_path, tiny_vlm, chromium):
    from playwright.sync_api import sync_playwright

    process, url = _start_ui([], tmp_path)
    try:
        with sync_playwright() as playwright:
            browser, page = _page(playwright)
            page.goto(url)
            for bad, message in ((bad_images["not_image"], "notes.png"), (bad_images["huge"], "huge.png")):
                page.locator("#query input[type=file]").set_input_files(str(bad))
                _status(page, message)  # one clear line; the page lives on
            page.locator("#query input[type=file]").set_input_files(str(textile["local"][0]))
            page.wait_for_selector("#preview img", timeout=60000)
            small = tmp_path / "small.png"
            Image.open(textile["nominal"][1]).resize((100, 80)).save(small)
            page.locator("#references input[type=file]").set_input_files([str(textile["nominal"][0]), str(small)])
            _status(page, "differs from the query")
            page.locator("#send").click()
            _status(page, "empty message")
            page.locator("#message textarea").fill("What is wrong with this part?")
            page.locator("#send").click()
            _status(page, "returned nothing")  # the random tiny model answers with newlines only
            page.locator("#verdict-button").click()
            page.wait_for_selector("#verdict-card .verdict-card", timeout=60000)
            assert "verdict" in page.locator("#verdict-card").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui-verdict.png"), full_page=True)
            page.screenshot(path=str(DOCS_PICTURE), full_page=True)  # the README's and the site's picture
            browser.close()
    finally:
        process.terminate()  # a plain `kill`: the server cleans up on its way out
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    log = (tmp_path / "ui.log").read_text()
    assert "127.0.0.1" in log  # bound to this machine only
    uploads = Path(log.split("uploads in ", 1)[1].split(" (removed on exit)", 1)[0])
    assert uploads.name.startswith("axr-ui-") and not uploads.exists()  # the uploaded files are gone


def test_web_ui_chat_answers_with_smollm2_through_the_server(textile, tmp_path, vllm_server, chromium):
    from playwright.sync_api import sync_playwright

    process, url = _start_ui(
        ["--backend", "openai", "--model", "smollm2", "--base-url", vllm_server.base_url, "--text-only"], tmp_path
    )
    try:
        with sync_playwright() as playwright:
            browser, page = _page(playwright)
            page.goto(url)
            page.locator("#query input[type=file]").set_input_files(str(textile["local"][0]))
            page.wait_for_selector("#preview img", timeout=60000)
            page.locator("#message textarea").fill("What could a defect in woven fabric look like?")
            page.locator("#send").click()
            _status(page, "answered")
            bubbles = page.locator("#chatbot .message").all_inner_texts()
            assert len(bubbles) >= 2 and bubbles[-1].strip()
            page.locator("#verdict-button").click()
            _status(page, "reads text only")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui-chat-smollm2.png"), full_page=True)
            browser.close()
    finally:
        process.kill()


def test_hf_streams_the_same_answer_it_generates(hf_smollm2):
    from axr.reasoning.backends.base import Sampling, system, user

    request = [system("You are a helpful assistant."), user("Name three colours.")]
    sampling = Sampling(max_tokens=24)
    pieces = list(hf_smollm2.stream(request, sampling))
    (completion,) = hf_smollm2.generate([request], sampling)
    assert len(pieces) > 1 and "".join(pieces).strip() == completion.text.strip()


def test_a_failed_stream_is_one_chat_error(textile):
    from axr.reasoning.backends.openai_server import OpenAIBackend
    from axr.reasoning.vllm_server import free_port

    backend = OpenAIBackend("m", f"http://127.0.0.1:{free_port()}/v1", supports_images=False, timeout_s=2)
    chat = Chat(backend, Session(images=[str(textile["local"][0])]))
    with pytest.raises(ChatError, match="could not answer: .*cannot connect"):
        chat.ask("hello?")
    assert chat.session.history == []


def test_openai_stream_through_the_server(vllm_server):
    from axr.reasoning.backends.base import Sampling, system, user
    from axr.reasoning.backends.openai_server import OpenAIBackend

    backend = OpenAIBackend("smollm2", vllm_server.base_url, supports_images=False)
    pieces = list(
        backend.stream([system("You are a helpful assistant."), user("Name three colours.")], Sampling(max_tokens=24))
    )
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_the_ui_uses_only_the_models_it_was_started_with():
    """The page picks a label; a label it made up (a folder, a server URL of its own) is refused before any
    model is loaded or any request, with its API key, is sent."""
    from axr.reasoning.chat import ChatError
    from axr.reasoning.ui import LoadedBackends

    made = []

    class Closable:
        closed = False

        def close(self):
            self.closed = True

    def load(*spec):
        made.append(spec)
        return Closable()

    allowed = [("hf", "tiny-qwen2.5-vl", None), ("openai", "m", "http://u:secret@127.0.0.1:8000/v1")]
    loaded = LoadedBackends(load, allowed, text_only=False)
    assert list(loaded.allowed) == ["hf:tiny-qwen2.5-vl", "openai:m @ http://***@127.0.0.1:8000/v1"]
    first = loaded.get(loaded.default)
    assert loaded.get("hf:tiny-qwen2.5-vl") is first and made == [("hf", "tiny-qwen2.5-vl", None, False)]
    for forged in ("openai:m @ http://evil.example/v1", "hf:/etc", "openai:m"):
        with pytest.raises(ChatError, match="not one of the models this UI was started with"):
            loaded.get(forged)
    assert len(made) == 1
    loaded.close()
    assert first.closed


def test_the_ui_reads_and_writes_only_inside_its_upload_folder(tmp_path, tiny_vlm):
    """Uploads named `../..` land inside the upload folder; the page can neither fetch nor submit a file
    outside it, whether named directly, through `..`, or through a link placed inside it."""
    import io

    import httpx

    private = tmp_path / "private.png"
    Image.new("RGB", (32, 32), "red").save(private)
    process, url = _start_ui([], tmp_path)
    try:
        uploads = Path((tmp_path / "ui.log").read_text().split("uploads in ", 1)[1].split(" (removed", 1)[0])
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32), "gray").save(buffer, format="PNG")
        answer = httpx.post(f"{url}/gradio_api/upload", files={"files": ("../../escape.png", buffer.getvalue())})
        [stored] = answer.json()
        assert Path(stored).resolve().is_relative_to(uploads.resolve()) and Path(stored).name == "escape.png"
        assert not (uploads.parent / "escape.png").exists() and not (uploads.parent.parent / "escape.png").exists()
        (uploads / "link.png").symlink_to(private)
        outside = [str(private), str(uploads / "link.png"), f"{uploads}/{os.path.relpath(private, uploads)}"]
        for path in outside:
            assert httpx.get(f"{url}/gradio_api/file={path}").status_code == 403

        def submit(path: str) -> str:
            data = [{"path": path, "meta": {"_type": "gradio.FileData"}}, [], "(none)"]
            event = httpx.post(f"{url}/gradio_api/call/set_inputs", json={"data": data}).json()["event_id"]
            return httpx.get(f"{url}/gradio_api/call/set_inputs/{event}", timeout=60).text

        assert all(submit(path).startswith("event: error") for path in outside)
        assert submit(stored).startswith("event: complete")  # the same call with an upload of its own works
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not uploads.exists()
