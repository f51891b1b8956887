"""One-token scoring: the first answer token's log-probabilities from every backend, and P(yes) read from
them. Real models: SmolLM2 through hf and through the vLLM CPU server."""

from __future__ import annotations

import math

import pytest

from axr.reasoning.backends import Sampling, load_backend, system, user
from axr.reasoning.backends.openai_server import _completion, build_payload
from axr.reasoning.scoring import yes_probability

QUESTIONS = ["Is fire hot? Answer yes or no.", "Is ice hot? Answer yes or no."]
SCORED = Sampling(max_tokens=1, top_logprobs=10)


def requests():
    return [[system("Answer with one word: yes or no."), user(q)] for q in QUESTIONS]


def test_yes_probability_pools_spellings_and_refuses_to_guess():
    assert yes_probability({"Yes": math.log(0.3), " yes": math.log(0.1), "No": math.log(0.4)}) == pytest.approx(0.5)
    assert yes_probability({"The": -0.1, "I": -2.0}) is None  # neither answer: ask again, never a score
    assert yes_probability(None) is None and yes_probability({"no": -0.5}) == 0.0


def test_openai_payload_asks_for_logprobs_and_the_answer_carries_them():
    payload = build_payload("m", requests()[0], SCORED, None, supports_images=False)
    assert payload["logprobs"] is True and payload["top_logprobs"] == 10 and payload["max_tokens"] == 1
    assert "logprobs" not in build_payload("m", requests()[0], Sampling(), None, supports_images=False)
    body = {  # the shape of OpenAI's and vLLM's chat-completions answer with logprobs
        "choices": [
            {
                "message": {"content": "Yes"},
                "finish_reason": "length",
                "logprobs": {
                    "content": [
                        {
                            "token": "Yes",
                            "logprob": -0.2,
                            "top_logprobs": [{"token": "No", "logprob": -1.8}, {"token": "Yes", "logprob": -0.2}],
                        }
                    ]
                },
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 1},
    }
    completion = _completion(body, 0.1)
    assert list(completion.top_logprobs) == ["Yes", "No"]  # most likely first
    assert yes_probability(completion.top_logprobs) == pytest.approx(1 / (1 + math.exp(-1.6)))


def check(completions) -> None:
    for completion in completions:
        assert completion.tokens_out == 1 and len(completion.top_logprobs) >= 5
        assert max(completion.top_logprobs, key=completion.top_logprobs.get) == completion.text  # greedy: the top
        assert all(logprob <= 0 for logprob in completion.top_logprobs.values())
        assert 0.0 <= yes_probability(completion.top_logprobs) <= 1.0


def test_hf_returns_the_first_tokens_logprobs(smollm2):
    check(load_backend("hf", str(smollm2)).generate(requests(), SCORED))


def test_the_vllm_server_returns_the_first_tokens_logprobs(vllm_server):
    from axr.eval.bench import prefix_cache_counters

    backend = load_backend("openai", "smollm2", base_url=vllm_server.base_url, supports_images=False)
    check(backend.generate(requests(), SCORED))
    # the bench's prefix-cache hit rate reads these counters from the server's Prometheus endpoint
    counters = prefix_cache_counters(vllm_server.base_url)
    assert counters["queries"] > 0 and 0 <= counters["hits"] <= counters["queries"]
    assert prefix_cache_counters(None) is None


BOOK = (  # about 90 tokens: under one of the CPU build's default 128-token cache blocks, over two 32-token ones
    "Answer with one word: yes or no. A frame is anomalous when a person rides a bicycle, a skateboard or a "
    "scooter on the walkway, when a car or a truck drives onto the walkway, when people fight, chase or fall, or "
    "when an object is left behind. Everything else is normal: people walking, standing, talking or sitting, "
    "alone or in groups, in any weather."
)


def test_the_cpu_server_caches_a_rule_book_shorter_than_its_default_block(vllm_server):
    """A scoring prompt's rule book is cached in whole blocks only: with the CPU build's default 128-token
    blocks every request recomputed this book (`server_args` asks for 32-token ones)."""
    from axr.eval.bench import prefix_cache_counters

    backend = load_backend("openai", "smollm2", base_url=vllm_server.base_url, supports_images=False)
    captions = [f"Caption {i}: a man walks past parked car number {i}. Anomalous?" for i in range(4)]
    backend.generate([[system(BOOK), user(captions[0])]], SCORED)  # the book enters the cache
    before = prefix_cache_counters(vllm_server.base_url)
    backend.generate([[system(BOOK), user(c)] for c in captions[1:]], SCORED)
    after = prefix_cache_counters(vllm_server.base_url)
    assert after["hits"] - before["hits"] >= 64 * 3  # two 32-token blocks of the book, for each of three


def test_axr_serve_compiles_the_model_on_a_cpu(vllm_server):
    """`axr serve` (the session's server) compiles by default: a long-lived CPU server scores 6-15% faster for
    the 40-90 s longer start (`--eager` starts fast)."""
    log = vllm_server.log.read_text()
    assert "enforce_eager=False" in log and "Warming up model for the compilation" in log


def test_each_distinct_caption_is_scored_once_and_a_rerun_asks_nothing(smollm2, tmp_path):
    from axr.reasoning.rulebook_import import load_rules
    from axr.reasoning.scoring import CaptionScorer

    backend = load_backend("hf", str(smollm2))
    book = load_rules("surveillance")
    captions = ["A man is walking.", "A man  is walking.", "Two men are fighting.", "A man is walking."]
    scorer = CaptionScorer(backend, book, tmp_path / "scores.jsonl")
    scores = scorer.score(captions)
    assert scorer.asked == 2 and set(scores) == set(captions) and all(0 <= p <= 1 for p in scores.values())
    assert scores["A man is walking."] == scores["A man  is walking."]  # the same text, one score
    again = CaptionScorer(backend, book, tmp_path / "scores.jsonl")
    assert again.score(captions) == scores and again.asked == 0  # from the journal, no request
    other = CaptionScorer(backend, load_rules("data:anomalyruler/rule/rule_ped2.txt"), tmp_path / "scores.jsonl")
    other.score(captions[:1])
    assert other.asked == 1  # another rule book is another prompt: asked afresh


def test_an_interrupted_scoring_run_resumes_without_asking_again(smollm2, tmp_path):
    """Ctrl-C after the first chunk: its answers are journaled; the next run asks only the rest."""
    from axr.reasoning.rulebook_import import load_rules
    from axr.reasoning.scoring import CaptionScorer

    class Interrupted:
        """SmolLM2 through hf, interrupted (as by Ctrl-C) on its second batch of requests."""

        def __init__(self, backend):
            self.backend, self.model, self.calls = backend, backend.model, 0

        def generate(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            return self.backend.generate(*args, **kwargs)

    backend, book = load_backend("hf", str(smollm2)), load_rules("surveillance")
    captions = ["A man is walking.", "Two men are fighting.", "A car is parked.", "A dog runs."]
    with pytest.raises(KeyboardInterrupt):
        CaptionScorer(Interrupted(backend), book, tmp_path / "s.jsonl").score(captions, chunk=2)
    resumed = CaptionScorer(backend, book, tmp_path / "s.jsonl")
    assert len(resumed.known(captions)) == 2  # the first chunk's answers survived the interruption
    assert len(resumed.score(captions, chunk=2)) == 4 and resumed.asked == 2  # only the rest was asked


def test_a_request_without_an_answer_is_never_scored(tmp_path):
    from axr.reasoning.backends.base import Backend, Completion
    from axr.reasoning.rulebook_import import load_rules
    from axr.reasoning.scoring import CaptionScorer

    class Failing(Backend):
        """Every request fails the first time (a dropped connection), then answers "No"."""

        name, model, supports_images = "scripted", "scripted", False

        def __init__(self):
            self.seen: set[str] = set()

        def _complete(self, requests, sampling, schema, arrived=None):
            out = []
            for request in requests:
                text = request[-1]["content"][0]["text"]
                first = text not in self.seen
                self.seen.add(text)
                out.append(
                    Completion(error="dropped")
                    if first
                    else Completion(text="No", top_logprobs={"No": -0.1, "Yes": -2.4})
                )
            return out

    backend, book = Failing(), load_rules("surveillance")
    first = CaptionScorer(backend, book, tmp_path / "s.jsonl")
    assert first.score(["A man is walking."]) == {} and first.unanswered == 1
    assert first.score(["A man is walking."]) == {} and first.asked == 1  # once a run: the next run retries
    second = CaptionScorer(backend, book, tmp_path / "s.jsonl")
    assert list(second.score(["A man is walking."]).values()) == [pytest.approx(1 / (1 + math.exp(2.3)))]


def test_fusion_ranks_each_signal_against_the_normal_references():
    import numpy as np

    from axr.reasoning.scoring import fuse, rank_against

    close = dict(abs=1e-3)  # each rank carries a tie-break of under 0.001
    reference = [0.1, 0.2, 0.3, 0.4]
    assert rank_against([0.05, 0.25, 0.9], reference).tolist() == pytest.approx([0.0, 0.5, 1.0], **close)
    model_reference = [0.5, 0.6, 0.7, 0.8]
    fused = fuse(np.array([0.9, 0.1]), np.array([0.2, 0.99]), reference, model_reference, 0.5, "rank")
    expected = [0.5 * 1.0 + 0.5 * 0.0, 0.5 * 0.125 + 0.5 * 1.0]  # each on its own references' scale
    assert fused.tolist() == pytest.approx(expected, **close)
    assert fuse([0.3], [0.9], reference, [0.1], 0.0, "rank").tolist() == pytest.approx([0.625], **close)  # trigger
    # a value equal to every reference sits mid-way; values past the references keep their order
    assert rank_against([0.0], [0.0, 0.0]).tolist() == [0.5]
    past = rank_against([0.5, 0.9, 5.0], reference)
    assert past[0] < past[1] < past[2] and 1.0 < past[0] < 1.0 + 1e-3


def test_fishers_fusion_lets_a_sure_signal_outweigh_two_unusual_ones():
    import math

    import numpy as np

    from axr.reasoning.scoring import fuse, largest_fused, surprise_against

    close = dict(abs=1e-3)
    reference, model_reference = [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]
    # -log((references at or above + 1) / (n + 1)): 0 below them all, log 5 past them all
    expected = [0.0, -math.log(3 / 5), math.log(5)]
    assert surprise_against([0.05, 0.25, 0.9], reference).tolist() == pytest.approx(expected, **close)
    # frame 0: the trigger past every reference, the model below them all; frame 1: both a little unusual.
    # Mid-ranks put frame 1 first (0.625 > 0.5); Fisher's method puts the frame one signal is sure of first.
    trigger, model = np.array([0.9, 0.25]), np.array([0.4, 0.65])
    ranked = fuse(trigger, model, reference, model_reference, 0.5, "rank")
    fisher = fuse(trigger, model, reference, model_reference, 0.5, "fisher")
    assert ranked[0] < ranked[1] and fisher[0] > fisher[1]
    assert fisher.tolist() == pytest.approx([0.5 * math.log(5), -math.log(3 / 5)], **close)
    # a frame the model did not score keeps the trigger's part for both
    assert fuse([0.9], [np.nan], reference, model_reference).tolist() == pytest.approx([math.log(5)], **close)
    top = largest_fused(reference, model_reference, 0.5, "fisher")
    assert fuse([9.0], [9.0], reference, model_reference)[0] <= top == pytest.approx(math.log(5), **close)


def test_a_caption_run_fuses_the_models_scores_and_a_rerun_asks_nothing(smollm2, tmp_path):
    import json

    from tests.captions_layout import synthetic_videos, write_caption_set
    from tests.conftest import run_axr

    write_caption_set(tmp_path / "set", synthetic_videos(6, 30))
    book = tmp_path / "rules.txt"
    book.write_text("**Rules for Anomaly Human Activities:**\n1. Riding a bicycle or skateboard\n")
    args = ["eval", "run", "captions", "--data-dir", str(tmp_path / "set"), "--rules", str(book)]
    args += ["--backend", "hf", "--model", str(smollm2), "--set", "pipeline.scoring.policy=all"]
    env = {"AXR_CACHE": str(tmp_path / "cache")}
    run_axr(*args, "--output", str(tmp_path / "run"), env=env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scoring"]["asked_this_run"] == 5 and metrics["scoring"]["unanswered"] == 0  # 5 distinct captions
    assert 0 <= metrics["frame_auc_pooled"] <= 1
    run_axr(*args, "--output", str(tmp_path / "again"), env=env)
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["scoring"]["asked_this_run"] == 0
