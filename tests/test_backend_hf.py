"""The transformers backend against real models: the tiny Qwen2.5-VL and SmolLM2-135M."""

import numpy as np
import pytest
import torch
from PIL import Image

from axr.reasoning.backends import BackendError, Sampling, load_backend, system, user
from axr.reasoning.schema import Caption, VerdictAnswer


def noise(seed: int, size: int = 120) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_smollm2_answers_a_question(hf_smollm2):
    [completion] = hf_smollm2.generate([[user("What is the capital of France?")]], Sampling(max_tokens=20))
    assert "Paris" in completion.text
    assert completion.finish_reason == "stop" and completion.tokens_out < 20 and completion.tokens_in > 10


def test_vlm_batched_equals_one_by_one(hf_tiny):
    """Left padding: a batch of image prompts (one and two images) gives the same greedy tokens as singles."""
    requests = [
        [user("Describe the fabric.", [noise(0)])],
        [system("You inspect parts."), user("Compare these two images.", [noise(1), noise(2)])],
        [user("Is anything wrong here? Look closely at every part.", [noise(3)])],
    ]
    sampling = Sampling(max_tokens=12)
    hf_tiny.batch_size = 2
    arrived = []
    in_pairs = hf_tiny.generate(requests, sampling, on_answer=lambda i, c: arrived.append((i, c)))
    assert [i for i, _ in arrived] == [0, 1, 2] and [c for _, c in arrived] == in_pairs  # each batch as it ends
    hf_tiny.batch_size = 3
    batched = hf_tiny.generate(requests, sampling)
    hf_tiny.batch_size = 1
    singles = [hf_tiny.generate([r], sampling)[0] for r in requests]
    hf_tiny.batch_size = 4
    assert [c.text for c in batched] == [c.text for c in singles]
    assert [c.tokens_in for c in batched] == [c.tokens_in for c in singles]
    assert batched[1].tokens_in > batched[0].tokens_in  # two images cost more tokens than one
    assert all(c.finish_reason in ("stop", "length") for c in batched)


def test_structured_output_validates_on_a_random_vlm(hf_tiny):
    """Constrained decoding closes the JSON even when the model's own tokens are noise."""
    completions = hf_tiny.generate(
        [[user("Describe.", [noise(4)])], [user("Describe.", [noise(5)])]], Sampling(max_tokens=1100), Caption
    )
    for completion in completions:
        assert isinstance(completion.parsed, Caption), completion.parse_error


def test_structured_caption_from_smollm2(hf_smollm2):
    prompt = "Describe a woven fabric with a small hole in one sentence. Answer as JSON with a caption."
    [completion] = hf_smollm2.generate([[user(prompt)]], Sampling(max_tokens=300), Caption)
    assert isinstance(completion.parsed, Caption), (completion.parse_error, completion.text)
    assert completion.parsed.caption.strip()


def test_repair_then_unparsed_without_constraints(smollm2):
    """Without constrained decoding, a failed parse gets one repair turn and then stays unparsed, raw kept."""
    backend = load_backend("hf", str(smollm2), constrained=False)
    final = []  # on_answer hears of an answer once, when it is final: after its repair turn
    request = [[user("Say hello in one word.")]]
    [completion] = backend.generate(request, Sampling(max_tokens=8), VerdictAnswer, lambda i, c: final.append(c))
    assert final == [completion] and final[0].repaired
    assert completion.parsed is None and completion.parse_error
    assert completion.text  # the raw answer is kept for the record
    assert completion.tokens_out > 8  # both turns are counted


def test_text_model_refuses_images(hf_smollm2):
    with pytest.raises(BackendError, match="takes text only"):
        hf_smollm2.generate([[user("describe", [noise(0)])]])


def test_bad_model_path_is_one_clear_line(tmp_path):
    with pytest.raises(BackendError, match="cannot load model"):
        load_backend("hf", str(tmp_path / "no-model"))
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        load_backend("nope", "x")


def test_peft_adapter_loads_and_changes_output(tiny_vlm, tmp_path, hf_tiny):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm)
    lora = peft.get_peft_model(
        model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    lora.save_pretrained(tmp_path / "adapter")
    adapted = load_backend("hf", str(tiny_vlm), adapter=str(tmp_path / "adapter"))
    assert isinstance(adapted.net, peft.PeftModel)
    # the tiny model's greedy text is degenerate either way, so compare what the adapter changes: the logits
    inputs = hf_tiny.processor(text=["Describe."], return_tensors="pt")
    with torch.inference_mode():
        assert not torch.allclose(adapted.net(**inputs).logits, hf_tiny.net(**inputs).logits)
    assert adapted.generate([[user("Describe.", [noise(7)])]], Sampling(max_tokens=4))[0].tokens_out > 0
    with pytest.raises(BackendError, match="not a peft adapter"):
        load_backend("hf", str(tiny_vlm), adapter=str(tmp_path))
