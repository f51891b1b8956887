import pytest

from axr.reasoning.parsing import extract_json, parse, repair_messages, split_think_answer
from axr.reasoning.schema import Caption, VerdictAnswer

GOOD = '{"verdict": "anomalous", "score": 0.8, "anomaly_type": "hole"}'


@pytest.mark.parametrize(
    "text, verdict",
    [
        (GOOD, "anomalous"),
        (f"```json\n{GOOD}\n```", "anomalous"),
        (f"Sure! Here is my answer:\n{GOOD}\nHope this helps.", "anomalous"),
        (f"<think>the weave is broken</think><answer>{GOOD}</answer>", "anomalous"),
        ('{"verdict": "normal", "score": 0.1}', "normal"),
    ],
)
def test_parse_accepts_real_shapes(text, verdict):
    result = parse(text, VerdictAnswer)
    assert result.ok, result.error
    assert result.value.verdict == verdict


@pytest.mark.parametrize(
    "text, error",
    [
        ('{"verdict": "anomalous", "score": 0.8, "anomaly_ty', "incomplete or malformed"),
        ('{"verdict": "Anomalous", "score": 0.8}', "verdict: Input should be 'normal' or 'anomalous'"),
        ('{"verdict": "anomalous"}', "score: Field required"),
        ("", "empty answer"),
        ("   \n", "empty answer"),
        (None, "returned nothing"),
        ("The image looks defective to me.", "no JSON object found"),
        ("<think>hmm</think><answer></answer>", "empty answer"),
        (f"<answer>{GOOD}</answer><answer>{GOOD}</answer>", "exactly one <answer>"),
        ("[1, 2]", "expected a JSON object"),
        ('{"verdict": "normal", "score": 0.1, "extra": 1}', "extra: Extra inputs are not permitted"),
    ],
)
def test_parse_rejects_failure_shapes_without_guessing(text, error):
    result = parse(text, VerdictAnswer)
    assert not result.ok
    assert error in result.error


def test_think_is_kept():
    result = parse(f"<think>edge is frayed</think><answer>{GOOD}</answer>", VerdictAnswer)
    assert result.think == "edge is frayed"
    assert split_think_answer("plain") == (None, "plain")


def test_extract_json_skips_braces_in_prose():
    assert extract_json('use {curly} braces: {"caption": "ok"}') == {"caption": "ok"}


def test_repair_turn_shows_error_and_schema():
    messages = [{"role": "user", "content": [{"type": "text", "text": "describe"}]}]
    repaired = repair_messages(messages, "garbage", "no JSON object found", Caption)
    assert [m["role"] for m in repaired] == ["user", "assistant", "user"]
    text = repaired[-1]["content"][0]["text"]
    assert "no JSON object found" in text and '"caption"' in text
