"""Every template rendered with fixed inputs must equal its snapshot: a wording change is deliberate.

Update snapshots after an intended change with `AXR_UPDATE_SNAPSHOTS=1 pytest tests/test_prompting.py`,
and bump the template's version in the same commit.
"""

import os
import re
from pathlib import Path

import pytest

from axr.reasoning.prompting import prompts_dir, render, template_names, template_version
from axr.reasoning.schema import (
    CRITERIA,
    Caption,
    ChoiceAnswer,
    InducedRules,
    JudgeAnswer,
    KeywordProposal,
    Rationale,
    RuleBook,
    Verdict,
    VerdictAnswer,
)

SNAPSHOTS = Path(__file__).parent / "snapshots" / "prompts"
BOOK = RuleBook.model_validate(
    {
        "name": "demo",
        "sections": [
            {
                "name": "human activity",
                "normal": [{"id": "n1", "text": "people walk", "examples": ["a man walks"]}],
                "anomaly": [
                    {"id": "a1", "text": "riding a vehicle", "examples": ["a bicycle"]},
                    {"id": "a2", "text": "disabled rule", "enabled": False},
                ],
            }
        ],
    }
)
RATIONALE = Rationale(what="a hole in the fabric", why="the weave must be intact", how="threads are cut")

CASES = {
    "caption": [
        dict(subject="scene", image_stats=None, schema=Caption),
        dict(subject="object", image_stats="size 250x250; mean brightness 0.52", schema=Caption),
    ],
    "induce_normal": [
        dict(
            domain="scene",
            observations=["a man walks", "two women walk"],
            sections=["human activity", "environment"],
            schema=InducedRules,
        )
    ],
    "induce_anomaly": [
        dict(
            domain="scene",
            normal_rules=[{"name": "human activity", "rules": ["people walk"]}],
            sections=["human activity"],
            schema=InducedRules,
        )
    ],
    "aggregate": [
        dict(
            domain="scene",
            rules=[{"id": "a1", "text": "riding", "examples": ["bicycle"]}],
            max_keywords=5,
            schema=KeywordProposal,
        )
    ],
    "deduce_system": [dict(rulebook=BOOK, schema=VerdictAnswer)],
    "score_system": [dict(rulebook=BOOK, normal_summary=""), dict(rulebook=BOOK, normal_summary="- a man walks")],
    "score_user": [dict(caption="a man rides a bicycle")],
    "pseudo_anomaly": [dict(domain="scene")],
    "event": [
        dict(
            start=1.2,
            end=4.0,
            frames=28,
            shown=2,
            distinct=2,
            captions=[(1.2, "a man walks"), (2.5, "a man rides a bike")],
        ),
        dict(start=0.0, end=9.0, frames=90, shown=1, distinct=5, captions=[(3.0, "a truck drives on the walkway")]),
    ],
    "deduce_user": [
        dict(observation="a man rides a bicycle", sample_id="01_0001"),
        dict(observation="a man walks", sample_id=None),
    ],
    "direct_system": [
        dict(
            domain="textile",
            n_references=2,
            n_query=1,
            rulebook=BOOK,
            hint="odd region top left",
            schema=VerdictAnswer,
        ),
        dict(domain="textile", n_references=0, n_query=1, rulebook=None, hint=None, schema=VerdictAnswer),
        dict(domain="scene", n_references=1, n_query=8, rulebook=None, hint=None, schema=VerdictAnswer),
    ],
    "chat_system": [
        dict(
            n_references=1,
            rulebook=BOOK,
            verdict=Verdict(verdict="anomalous", score=0.9, anomaly_type="hole", rationale=RATIONALE),
        ),
        dict(n_references=0, rulebook=None, verdict=None),
    ],
    "mcq": [
        dict(
            question="Is there any defect in the object?",
            options={"A": "Yes.", "B": "No."},
            n_references=1,
            schema=ChoiceAnswer,
        )
    ],
    "judge": [dict(reference=RATIONALE, candidate=RATIONALE, rubric=CRITERIA, schema=JudgeAnswer)],
    "repair": [dict(error="score: Field required", schema=Caption)],
}


def test_every_template_has_a_case():
    assert sorted(CASES) == template_names()


@pytest.mark.parametrize("name, index, variables", [(n, i, v) for n, vs in CASES.items() for i, v in enumerate(vs)])
def test_rendered_prompt_matches_snapshot(name, index, variables):
    text = render(name, **variables)
    path = SNAPSHOTS / f"{name}.{index}.txt"
    if os.environ.get("AXR_UPDATE_SNAPSHOTS") or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        if not os.environ.get("AXR_UPDATE_SNAPSHOTS"):
            pytest.fail(f"snapshot {path.name} was missing and has been written; review and commit it")
    assert text + "\n" == path.read_text(), f"prompt {name} changed; see the module docstring"


def test_missing_variable_is_an_error():
    with pytest.raises(ValueError, match="prompt 'deduce_user'"):
        render("deduce_user", sample_id="x")


def test_disabled_rules_are_left_out():
    text = render("deduce_system", rulebook=BOOK, schema=VerdictAnswer)
    assert "[a1] riding a vehicle" in text and "disabled rule" not in text


def test_readme_index_lists_every_template_with_its_version():
    readme = (prompts_dir() / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)\.jinja` \| (\S+) \|", readme, flags=re.M))
    assert sorted(rows) == template_names()
    for name, version in rows.items():
        assert template_version(name) == f"{name}@{version}"
