"""A compact one-token scorer trained without anomaly labels: pseudo-anomalies from the rule book, rows from
the normal references only, SFT then GRPO of SmolLM2 on them, the linear-probe baseline, and both served
through the scoring stage."""

import json
import random
from collections import Counter

import pytest
import yaml

from axr.reasoning.schema import Rule
from axr.training.pseudo_anomalies import action_phrases, carries_rule, object_phrases, pseudo_anomalous
from axr.training.scorer_data import _draw_rules
from tests.captions_layout import ANOMALOUS, NORMAL, write_caption_set
from tests.conftest import REPO, run_axr

CONTRADICTING = "A man is riding a bicycle on the path. Labelled normal."
BOOK = {
    "name": "walkway",
    "domain": "walkway scene",
    "sections": [
        {
            "name": "human activity",
            "normal": [{"id": "n1", "text": "Walking on the pathway"}],
            "anomaly": [
                {"id": "a1", "text": "Riding a bicycle, a skateboard or a scooter"},
                {"id": "a2", "text": "Carrying, pointing or firing a gun or a knife"},
            ],
        },
        {"name": "environment", "anomaly": [{"id": "e1", "text": "Missing, removed, or ajar manhole covers"}]},
    ],
}


def test_rule_texts_become_actions_and_objects_that_keep_their_words():
    assert action_phrases("Carrying, pointing or firing a gun or a knife") == [
        ("A person", "carrying a gun"),
        ("A person", "pointing a gun"),
        ("A person", "firing a gun"),
        ("A person", "carrying a knife"),
    ]
    assert ("Police", "arresting a person") in action_phrases("Police arresting, handcuffing or chasing a person")
    assert action_phrases("Any non-walking movement such as riding a bicycle or scooter, skateboarding") == [
        ("A person", "riding a bicycle"),
        ("A person", "riding scooter"),
        ("A person", "skateboarding"),
    ]
    assert object_phrases("Missing, removed, or ajar manhole covers") == [
        "missing manhole covers",
        "removed manhole covers",
        "ajar manhole covers",
    ]
    # a lone noun after a modified thing keeps the modifier: bare "trees" would be in every normal scene
    assert object_phrases("Damaged manhole cover or trees") == ["damaged manhole cover", "damaged trees"]
    assert object_phrases("Ground transportations such as vehicles, vans") == [
        "ground transportations",
        "vehicles",
        "vans",
    ]
    rule = Rule(id="a1", text="Riding a bicycle, a skateboard or a scooter")
    caption = "Two people are walking on the pathway. There are trees."
    written = pseudo_anomalous(caption, rule, "human activity", random.Random(0))
    assert written.startswith("Two people are riding a ") and written.endswith("There are trees.")  # in its style
    thing = Rule(id="e1", text="Missing, removed, or ajar manhole covers")
    written = {pseudo_anomalous(caption, thing, "environment", random.Random(seed)) for seed in range(8)}
    assert all(caption.split(". ")[0] in text and "manhole covers" in text for text in written)
    assert any("There are trees." in text and "manhole covers in the scene." in text for text in written)
    assert any(text.endswith("manhole covers, trees.") for text in written)  # in the caption's own list


@pytest.fixture(scope="module")
def scorer_task(tmp_path_factory):
    """A caption set on disk (v0 and v3 are the reference videos; their anomalous frames and every evaluated
    video carry captions found nowhere else) and a task naming its rule book."""
    from axr.eval.tasks import load_task

    root = tmp_path_factory.mktemp("scorer")
    videos = {}
    for v in range(6):
        frames = [(f"{NORMAL[i % 3]} Frame {i} of video {v}.", 0) for i in range(10)]
        frames += [(f"{ANOMALOUS[0]} Seen in video {v}.", 1)]
        if v == 0:  # a reference caption that contradicts the rule book (a captioner's mistake)
            frames += [(CONTRADICTING, 0)]
        videos[f"v{v}"] = frames
    data_dir = write_caption_set(root / "set", videos)
    rules = root / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    task = root / "task.yaml"
    config = load_task("captions", {"pipeline.rules": str(rules), "dataset.data_dir": str(data_dir)})
    task.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return task, videos


def _rows(out):
    from datasets import load_from_disk

    return {part: list(load_from_disk(str(out / part))) for part in ("sft", "grpo", "check")}


def test_scorer_rows_read_only_normal_reference_captions_and_carry_the_rules(tmp_path, scorer_task):
    task, videos = scorer_task
    out = tmp_path / "rows"
    run_axr("train", "data", str(task), "--kind", "scorer", "--out", str(out))
    parts = _rows(out)
    rows = [r for part in parts.values() for r in part]
    reference_normal = {c for v in ("v0", "v3") for c, y in videos[v] if y == 0}
    unseen = {c for name, frames in videos.items() for c, y in frames if name not in ("v0", "v3") or y == 1}
    negatives = [r for r in rows if r["label"] == 0]
    positives = [r for r in rows if r["label"] == 1]
    assert {r["caption"] for r in negatives} == reference_normal and len(positives) == len(negatives)
    assert not any(c in r["caption"] for r in rows for c in unseen)  # no evaluated video, no anomalous frame
    books = {r["id"]: Rule(**r) for s in BOOK["sections"] for r in s["anomaly"]}
    assert all(carries_rule(r["caption"], books[r["rule"]]) for r in positives)
    assert all(r["completion"][0]["content"] == ("yes" if r["label"] else "no") for r in rows)
    # the prompt is the scoring stage's own: the rule book in the system turn, the caption in the question
    system, question = rows[0]["prompt"]
    assert "Riding a bicycle" in system["content"] and rows[0]["caption"] in question["content"]
    assert sum(len(p) for p in parts.values()) == len(rows) and all(parts.values())
    card = (out / "check" / "README.md").read_text()
    assert "anomaly labels read: none" in card and "the evaluated videos are never read" in card
    again = tmp_path / "again"
    run_axr("train", "data", str(task), "--kind", "scorer", "--out", str(again))
    assert _rows(again) == parts  # seeded: the same rows, in the same parts
    sentences = tmp_path / "sentences"
    run_axr("train", "data", str(task), "--kind", "scorer", "--list-share", "0", "--out", str(sentences))
    assert "list_share: 0.0" in (sentences / "sft" / "README.md").read_text()
    written = [r["caption"] for part in _rows(sentences).values() for r in part if r["rule"] == "e1"]
    assert written and all("manhole covers in the scene." in text for text in written)  # a sentence each


def test_rules_first_leaves_out_references_that_name_an_anomaly_and_spreads_the_rules_by_phrase(tmp_path, scorer_task):
    task, _ = scorer_task
    run_axr("train", "data", str(task), "--kind", "scorer", "--rules-first", "--seed", "3", "--out", str(tmp_path))
    rows = [r for part in _rows(tmp_path).values() for r in part]
    # a "normal" reference caption saying what an anomaly rule names is never a "no" to that rule
    assert not any(r["caption"].startswith(CONTRADICTING) for r in rows)
    assert "negatives_naming_an_anomalous_action_left_out: 1" in (tmp_path / "sft" / "README.md").read_text()
    assert sum(r["label"] for r in rows) == 20  # one pseudo-anomaly for each of the 20 other references
    # a1 names three actions, a2 four, e1 three things: drawn by phrase, a2 leads 4 : 3; by rule, all alike
    rules = [(Rule(**r), section["name"]) for section in BOOK["sections"] for r in section["anomaly"]]

    def drawn(by_phrase: bool) -> Counter:
        return Counter(_draw_rules(rules, 1, random.Random(k), by_phrase)[0][0].id for k in range(3000))

    by_rule, by_phrase = drawn(False), drawn(True)
    assert max(by_rule.values()) - min(by_rule.values()) < 200
    assert by_phrase["a2"] > 1.2 * by_phrase["a1"] and by_phrase["a2"] > 1.2 * by_phrase["e1"]


def test_a_served_teacher_rewrites_pseudo_anomalies_and_a_useless_rewrite_falls_back(scorer_task, smollm2):
    """SmolLM2 as the teacher: every positive row still names its rule, whoever wrote it."""
    from axr.eval.tasks import load_task
    from axr.reasoning.backends import load_backend
    from axr.training.scorer_data import scorer_rows

    task, _ = scorer_task
    teacher = load_backend("hf", str(smollm2))
    parts, stats = scorer_rows(load_task(str(task)), negatives=2, teacher=teacher)
    positives = [r for part in parts.values() for r in part if r["label"] == 1]
    assert len(positives) == 2 and sum(stats["positive_sources"].values()) == 2
    books = {r["id"]: Rule(**r) for s in BOOK["sections"] for r in s["anomaly"]}
    assert all(carries_rule(r["caption"], books[r["rule"]]) for r in positives)
    assert {r["source"] for r in positives} <= {"teacher", "template"}


def test_a_rewrite_that_calls_its_addition_an_anomaly_falls_back():
    """Qwen2.5-Coder-1.5B wrote "The anomaly is ..." into a third of its rewrites: a label, not a caption."""
    from types import SimpleNamespace

    from axr.training.pseudo_anomalies import teacher_rewrites

    gun = Rule(id="a2", text="Carrying, pointing or firing a gun or a knife")
    written = [
        "A man walks on the path. The anomaly is a person carrying a gun.",
        "A man walks on the path, carrying a gun.",
        "A man walks on the path with a dog.",
    ]
    answers = [SimpleNamespace(text=text, error=None) for text in written]
    teacher = SimpleNamespace(generate=lambda requests, sampling: answers)
    out = teacher_rewrites(teacher, [("A man walks on the path.", gun)] * 3, "walkway")
    assert out == [None, "A man walks on the path, carrying a gun.", None]
    said_before = teacher_rewrites(teacher, [("An abnormal crowd walks on the path.", gun)] * 3, "walkway")
    assert said_before[0] is not None  # the captioner's own word, not the teacher's label
    crowd = Rule(id="a3", text="An abnormal crowd carrying a gun")
    assert teacher_rewrites(teacher, [("A man walks on the path.", crowd)] * 3, "walkway")[0] is not None


def test_a_task_without_anomaly_rules_or_references_is_refused(tmp_path, scorer_task):
    task, _ = scorer_task
    config = yaml.safe_load(task.read_text())
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"name": "x", "sections": [{"name": "s", "normal": [{"id": "n", "text": "ok"}]}]}))
    config["pipeline"]["rules"] = str(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = run_axr("train", "data", str(bad), "--kind", "scorer", "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "has no enabled anomaly rules" in result.stderr
    # reference videos with no normal frame give nothing to learn from
    only_anomalous = write_caption_set(tmp_path / "set", {f"v{v}": [(ANOMALOUS[0], 1)] * 3 for v in range(3)})
    args = ("train", "data", str(task), "--data-dir", str(only_anomalous), "--kind", "scorer")
    result = run_axr(*args, "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and "no normal reference caption" in result.stderr


def test_the_linear_probe_fits_and_serves_through_the_scoring_stage(tmp_path, scorer_task):
    from axr.reasoning.backends import load_backend
    from axr.reasoning.schema import RuleBook
    from axr.reasoning.scoring import CaptionScorer

    task, _ = scorer_task
    run_axr("train", "data", str(task), "--kind", "scorer", "--out", str(tmp_path / "rows"))
    rows = tmp_path / "rows"
    run_axr("train", "probe", str(rows / "sft"), str(rows / "grpo"), "--out", str(tmp_path / "probe"))
    report = tmp_path / "check.json"
    run_axr(
        "train", "check", str(tmp_path / "probe"), "--backend", "probe", "--dataset", str(rows / "check"),
        "--out", str(report),
    )  # fmt: skip
    figures = json.loads(report.read_text())
    assert figures["answered"] == figures["rows"] > 0 and figures["p_yes_on_yes_rows"] > figures["p_yes_on_no_rows"]
    probe = load_backend("probe", str(tmp_path / "probe"))
    scorer = CaptionScorer(probe, RuleBook(**BOOK), tmp_path / "scores.jsonl")
    scores = scorer.score(["A man is firing a gun on the pathway.", NORMAL[0]])
    assert scores["A man is firing a gun on the pathway."] > scores[NORMAL[0]]
    (answer,) = probe.generate([[{"role": "user", "content": "Describe the scene."}]])
    assert answer.error and "yes/no question" in answer.error
    result = run_axr("train", "check", str(tmp_path), "--backend", "probe", "--dataset", str(rows), check=False)
    assert result.returncode == 2 and "probe.json" in result.stderr


@pytest.mark.slow
def test_smollm2_scorer_sft_then_grpo_then_export_scores_in_the_scoring_stage(tmp_path, scorer_task, smollm2):
    """The shipped scorer recipes on the rows, a few steps each; the GRPO reward is the one-token answer's;
    the result is a plain model folder the scoring stage reads P(yes) from."""
    from axr.reasoning.backends import load_backend
    from axr.reasoning.schema import RuleBook
    from axr.reasoning.scoring import CaptionScorer

    task, _ = scorer_task
    rows = tmp_path / "rows"
    run_axr("train", "data", str(task), "--kind", "scorer", "--out", str(rows))

    def recipe(name, **fields):
        data = {**yaml.safe_load((REPO / "training" / "recipes" / f"{name}.yaml").read_text()), **fields}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    quick = {"max_steps": 2, "logging_steps": 1, "save_strategy": "no", "per_device_train_batch_size": 2}
    sft = recipe("smollm2-scorer-sft", dataset=str(rows / "sft"), trainer=quick)
    run_axr("train", "sft", "--config", sft, "--output-dir", str(tmp_path / "sft"))
    grpo = recipe(
        "smollm2-scorer-grpo",
        model=str(tmp_path / "sft"),
        dataset=str(rows / "grpo"),
        trainer={"max_steps": 1, "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 1,
                 "logging_steps": 1, "save_strategy": "no"},
    )  # fmt: skip
    run_axr("train", "grpo", "--config", grpo, "--output-dir", str(tmp_path / "grpo"))
    history = json.loads((tmp_path / "grpo" / "axr_training.json").read_text())["log_history"]
    assert any("rewards/answer_reward/mean" in entry for entry in history)
    run_axr("train", "export", str(tmp_path / "grpo"), "--out", str(tmp_path / "scorer"))
    report = tmp_path / "check.json"
    run_axr("train", "check", str(tmp_path / "scorer"), "--dataset", str(rows / "check"), "--out", str(report))
    assert json.loads(report.read_text())["answered"] > 0
    scorer = CaptionScorer(load_backend("hf", str(tmp_path / "scorer")), RuleBook(**BOOK), tmp_path / "s.jsonl")
    scores = scorer.score([NORMAL[0], ANOMALOUS[0]])
    assert set(scores) == {NORMAL[0], ANOMALOUS[0]} and all(0 <= p <= 1 for p in scores.values())
