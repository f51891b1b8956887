"""The openai backend against a real `vllm serve` (CPU build) serving SmolLM2, and its failure paths."""

import http.server
import json
import threading

import pytest

from axr.reasoning.backends import BackendError, Sampling, load_backend, user
from axr.reasoning.backends.openai_server import build_payload
from axr.reasoning.schema import Caption, VerdictAnswer
from axr.reasoning.vllm_server import free_port


@pytest.fixture(scope="module")
def backend(vllm_server):
    return load_backend("openai", "smollm2", base_url=vllm_server.base_url, supports_images=False, timeout_s=60)


def test_generation_batch_and_costs(backend):
    questions = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?"] * 3
    completions = backend.generate([[user(q)] for q in questions], Sampling(max_tokens=16))
    assert "Paris" in completions[0].text
    assert all(c.error is None and c.tokens_in > 0 and 0 < c.tokens_out <= 16 for c in completions)
    assert [c.text for c in completions[:3]] == [c.text for c in completions[3:6]]  # greedy, concurrent


def test_structured_verdict_validates(backend):
    prompt = "A bicycle rides through a crowd on a pedestrian walkway. Is this anomalous?"
    [completion] = backend.generate([[user(prompt)]], Sampling(max_tokens=600), VerdictAnswer)
    assert isinstance(completion.parsed, VerdictAnswer), (completion.parse_error, completion.text)


def test_timeout_is_recorded_per_request(vllm_server):
    slow = load_backend(
        "openai",
        "smollm2",
        base_url=vllm_server.base_url,
        supports_images=False,
        timeout_s=0.001,
        max_retries=1,
        backoff_s=0.01,
    )
    [completion] = slow.generate([[user("Write a long story.")]], Sampling(max_tokens=200), Caption)
    assert completion.error and "timed out" in completion.error and "2 tries" in completion.error
    assert completion.parsed is None


def test_wrong_model_name_stops_the_run(vllm_server):
    wrong = load_backend("openai", "no-such-model", base_url=vllm_server.base_url, supports_images=False)
    with pytest.raises(BackendError, match="HTTP 404"):
        wrong.generate([[user("hi")]])


def test_dead_server_is_a_clear_error():
    dead = load_backend("openai", "m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff_s=0.01)
    [completion] = dead.generate([[user("hi")]])
    assert "cannot connect" in completion.error


class Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 then 429, then a real-shaped completion: the retry path, on loopback."""

    calls = 0

    def do_POST(self):  # noqa: N802
        Flaky.calls += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert body["response_format"]["type"] == "json_schema"
        status = {1: 503, 2: 429}.get(Flaky.calls, 200)
        payload = (
            {"error": {"message": "busy"}}
            if status != 200
            else {
                "choices": [{"message": {"content": '{"caption": "a hole"}'}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4},
            }
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_retries_with_backoff_on_503_and_429():
    server = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = load_backend("openai", "m", base_url=f"http://127.0.0.1:{server.server_port}/v1", backoff_s=0.01)
        [completion] = client.generate([[user("x")]], schema=Caption)
        assert completion.parsed == Caption(caption="a hole") and Flaky.calls == 3
    finally:
        server.shutdown()


def test_payload_images_as_data_urls_and_schema():
    from PIL import Image

    payload = build_payload("m", [user("look", [Image.new("RGB", (8, 8))])], Sampling(seed=3), Caption, True)
    image_part = payload["messages"][0]["content"][0]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert payload["response_format"]["json_schema"]["schema"]["required"] == ["caption"]
    assert payload["seed"] == 3
    with pytest.raises(BackendError, match="text only"):
        build_payload("m", [user("look", [Image.new("RGB", (8, 8))])], Sampling(), None, False)


def test_api_key_from_environment_not_in_description(monkeypatch):
    monkeypatch.setenv("AXR_TEST_KEY", "sk-secret")
    client = load_backend("openai", "m", api_key_env="AXR_TEST_KEY")
    assert "sk-secret" not in json.dumps(client.describe())
