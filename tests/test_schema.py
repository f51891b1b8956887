import pytest
from pydantic import ValidationError

from axr.reasoning.schema import (
    CRITERIA,
    BoundingBox,
    Judgement,
    RuleBook,
    Sample,
    SchemaError,
    Verdict,
    VerdictAnswer,
    json_schema,
)

BOOK = {
    "name": "ped2-demo",
    "domain": "scene",
    "sections": [
        {
            "name": "human activity",
            "normal": [{"id": "n1", "text": "people walk on the walkway", "keywords": ["walk"]}],
            "anomaly": [{"id": "a1", "text": "vehicles on the walkway", "keywords": ["bicycle", "car"]}],
        }
    ],
    "provenance": {"model": "smollm2", "seeds": [0, 1]},
}


def test_rulebook_yaml_round_trip(tmp_path):
    book = RuleBook.model_validate(BOOK)
    path = book.save(tmp_path / "book.yaml")
    again = RuleBook.load(path)
    assert again == book
    assert again.rule_ids() == {"n1", "a1"}
    assert [r.id for r in again.rules("anomaly")] == ["a1"]
    assert again.provenance.date  # filled in when not given


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "name: x\nsections:\n  - name: s\n    anomaly:\n      - id: a1\n",
            "sections.0.anomaly.0.text: Field required",
        ),
        ("name: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: x\nsections: []\nsurprise: 1\n", "surprise: Extra inputs are not permitted"),
        (
            "name: x\nsections:\n  - name: s\n    normal: [{id: r, text: a}]\n    anomaly: [{id: r, text: b}]\n",
            "rule id 'r' appears more than once",
        ),
    ],
)
def test_malformed_rulebook_names_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        RuleBook.load(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_rulebook_file(tmp_path):
    with pytest.raises(SchemaError, match="not found"):
        RuleBook.load(tmp_path / "nope.yaml")


def test_verdict_answer_schema_excludes_unparsed_and_meta():
    schema = json_schema(VerdictAnswer)
    assert schema["properties"]["verdict"]["enum"] == ["normal", "anomalous"]
    assert "meta" not in schema["properties"] and "raw" not in schema["properties"]
    with pytest.raises(ValidationError):
        VerdictAnswer(verdict="unparsed", score=0.5)


def test_unparsed_verdict_keeps_raw_text():
    verdict = Verdict.unparsed("{oops", "no JSON object found", model="m")
    assert verdict.verdict == "unparsed" and verdict.raw == "{oops"
    assert verdict.pred_label is None and verdict.score is None
    assert Verdict(verdict="anomalous", score=0.9).pred_label == 1


def test_score_and_box_bounds():
    with pytest.raises(ValidationError):
        VerdictAnswer(verdict="normal", score=1.5)
    with pytest.raises(ValidationError, match="x0 <= x1"):
        BoundingBox(x0=0.8, y0=0.1, x1=0.2, y1=0.5)


def test_sample_needs_media():
    with pytest.raises(ValidationError, match="needs image_path"):
        Sample(sample_id="s1")
    assert Sample(sample_id="s1", caption="a man walks").caption


def test_judgement_totals_per_dimension():
    grades = {d: {c: 2 for c in CRITERIA[d]} for d in CRITERIA}
    grades["why"]["clarity"] = 0
    judgement = Judgement(**grades)
    assert judgement.scores() == {"what": 10, "why": 8, "how": 10}
    with pytest.raises(ValidationError):  # out of range
        Judgement(**{**grades, "what": {**grades["what"], "details": 3}})
    with pytest.raises(ValidationError):  # a criterion missing
        Judgement(**{**grades, "how": {"clarity": 2}})
    with pytest.raises(ValidationError):  # an invented criterion
        Judgement(**{**grades, "how": {**grades["how"], "vibes": 2}})
