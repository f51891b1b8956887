"""The in-process vLLM backend: request building everywhere; the engine itself in the vLLM CPU venv."""

import json
import os
import subprocess
import textwrap

import pytest
from PIL import Image

from axr.reasoning.backends import Sampling, user
from axr.reasoning.backends.vllm_engine import sampling_kwargs, to_vllm_messages
from axr.reasoning.schema import VerdictAnswer
from tests.conftest import axr_as_installed


def test_messages_carry_pil_images():
    image = Image.new("RGB", (8, 8))
    [message] = to_vllm_messages([user("look", [image])], supports_images=True)
    assert message["content"][0] == {"type": "image_pil", "image_pil": image}
    assert to_vllm_messages([user("hi")], supports_images=False) == [{"role": "user", "content": "hi"}]


def test_sampling_kwargs_with_schema():
    kwargs = sampling_kwargs(Sampling(max_tokens=7, seed=1), VerdictAnswer)
    assert kwargs["max_tokens"] == 7 and kwargs["seed"] == 1
    assert kwargs["structured_outputs"]["json"]["required"] == ["verdict", "score"]


SCRIPT = textwrap.dedent(
    """
    import json, sys
    if __name__ == "__main__":
        from axr.reasoning.backends import load_backend, Sampling, system, user
        from axr.reasoning.schema import VerdictAnswer
        backend = load_backend("vllm", sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=2048)
        rules = " ".join(f"Rule {i}: people may walk, stand or sit in zone {i}." for i in range(60))
        prefix = system("You judge scenes on a campus walkway. Vehicles are anomalous. " + rules)
        requests = [[prefix, user(q)] for q in ("A man walks.", "A car drives through the crowd.")]
        plain = backend.generate([[user("What is the capital of France?")]], Sampling(max_tokens=12))
        verdicts = backend.generate(requests, Sampling(max_tokens=300), VerdictAnswer)
        again = backend.generate(requests, Sampling(max_tokens=300), VerdictAnswer)
        scored = backend.generate(requests, Sampling(max_tokens=1, top_logprobs=5))
        print("RESULT " + json.dumps({"plain": plain[0].text,
                                      "parsed": [v.parsed is not None for v in verdicts],
                                      "cached": [v.extra["cached_tokens"] for v in again],
                                      "first_token": [[c.text, c.top_logprobs] for c in scored]}))
    """
)


@pytest.mark.slow
def test_vllm_engine_on_cpu(vllm_python, smollm2, tmp_path):
    from axr.reasoning.vllm_server import CPU_SERVER_ENV

    script = tmp_path / "run_vllm.py"
    script.write_text(SCRIPT)
    env = {**os.environ, **CPU_SERVER_ENV, "PYTHONPATH": str(axr_as_installed(tmp_path)), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [str(vllm_python), str(script), str(smollm2)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert "Paris" in out["plain"]
    assert out["parsed"] == [True, True]  # structured output, no free whitespace
    assert all(n is not None and n > 0 for n in out["cached"]), out  # shared prefix from the prefix cache
    for text, alternatives in out["first_token"]:  # one-token scoring: the first token's log-probabilities
        assert len(alternatives) >= 3 and all(logprob <= 0 for logprob in alternatives.values())
        assert max(alternatives, key=alternatives.get) == text  # greedy: the answer is the likeliest token
