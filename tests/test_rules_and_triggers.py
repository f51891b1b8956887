"""Rule-book import, the trigger stage, smoothing and the caption-set adapter, on real-layout data."""

import pytest

from axr.eval.datasets import LayoutError
from axr.eval.datasets.captions import load_caption_set, split_videos
from axr.reasoning.resources import resolve
from axr.reasoning.rulebook_import import import_anomalyruler
from axr.reasoning.schema import Rule, RuleBook, RuleSection, SchemaError
from axr.reasoning.settings import TriggerSettings
from axr.reasoning.smoothing import centred_mean, ema, event_spans, majority, smooth
from axr.reasoning.triggers import TriggerStage, clauses, lemmas
from tests.captions_layout import NORMAL, write_caption_set


def book(*anomaly: str, keywords=None) -> RuleBook:
    rules = [Rule(id=f"a{i}", text=t, keywords=keywords or []) for i, t in enumerate(anomaly, 1)]
    return RuleBook(name="t", sections=[RuleSection(name="human activity", normal=[], anomaly=rules)])


@pytest.mark.parametrize("name, n_anomaly, n_normal", [("ped2", 26, 19), ("SHTech", 24, 19)])
def test_import_paper_rule_books(name, n_anomaly, n_normal, tmp_path):
    rulebook = import_anomalyruler(resolve(f"data:anomalyruler/rule/rule_{name}.txt"))  # embedded in AXR
    assert len(rulebook.rules("anomaly")) == n_anomaly and len(rulebook.rules("normal")) == n_normal
    assert {s.name for s in rulebook.sections} == {"human activity", "environment"}
    assert rulebook.sections[0].anomaly[0].text == "Running or jumping"
    assert RuleBook.load(rulebook.save(tmp_path / "book.yaml")) == rulebook


def test_import_rejects_a_book_without_anomaly_rules(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_text("**Rules for Normal Human Activities:**\n1. Walking\n")
    with pytest.raises(SchemaError, match="no anomaly rules"):
        import_anomalyruler(path)
    path.write_text("1. Walking\n")
    with pytest.raises(SchemaError, match=":1: a numbered rule before any"):
        import_anomalyruler(path)


def test_whole_lemma_matching():
    stage = TriggerStage(book("Person lying on the ground", "Riding a bicycle"), NORMAL)
    assert stage.keyword_hits("A bird is flying over the path.") == {}
    assert stage.keyword_hits("A man lies down.") == {"a1": ["lie"]}
    assert stage.keyword_hits("Two bicycles; one man rides.") == {"a2": ["bicycle", "ride"]}
    assert lemmas("Riding bicycles") == ["ride", "bicycle"]


def test_a_keyword_common_in_the_references_weakens_but_still_counts():
    rules = book("Walking very fast near the building", "Riding a bicycle")
    stage = TriggerStage(rules, NORMAL, settings=TriggerSettings(keywords="rarity"))
    walking, fast = stage.score(["Two people are walking on the pathway.", "A man moves fast."])
    assert stage.weights["walk"] == pytest.approx(1 / (1 + 1 / 0.05))  # in every reference: weak
    assert 0 < walking.score < 0.1 and fast.score == 1.0  # in none: whole
    assert walking.keyword_hits == {} and fast.keyword_hits == {"a1": ["fast"]}  # a weak word names no rule
    assert stage.dropped == set()
    drop = TriggerStage(rules, NORMAL, settings=TriggerSettings(keywords="drop"))
    assert {"walk", "building"} <= drop.dropped and "fast" in drop.keywords["a1"]
    assert drop.score(["Two people are walking on the pathway."])[0].score == 0.0


def test_adaptive_weights_count_what_the_observations_use_beyond_the_references():
    references = ["A man rides a bicycle."] + NORMAL[:2]  # a third of the references mention a bicycle
    stage = TriggerStage(book("Riding a bicycle"), references)
    rarity = 1 / (1 + (1 / 3) / 0.05)
    assert stage.weights["bicycle"] == pytest.approx(rarity)
    stage.observe(["A man rides a bicycle."] * 2 + NORMAL[:1])  # two thirds of the observations do
    assert stage.weights["bicycle"] == pytest.approx(1 - (1 / 3) / (2 / 3))
    stage.observe(NORMAL)  # observations that never use it leave it at its rarity
    assert stage.weights["bicycle"] == pytest.approx(rarity)


def test_words_of_the_normal_rules_are_no_anomaly_keywords():
    rules = book("A person lying on the ground", "Riding a bicycle")
    rules.sections[0].normal.append(Rule(id="n1", text="Sitting on the ground"))
    assert "ground" not in TriggerStage(rules, NORMAL).keywords["a1"]
    keep = TriggerStage(rules, NORMAL, settings=TriggerSettings(exclude_normal_rule_words=False))
    assert "ground" in keep.keywords["a1"]


def test_rule_keywords_override_text():
    stage = TriggerStage(book("Unusual vehicles", keywords=["truck", "van"]), NORMAL)
    assert stage.keywords["a1"] == {"truck", "van"}


def test_a_book_without_anomaly_rules_is_refused():
    empty = RuleBook(name="e", sections=[RuleSection(name="s", normal=[Rule(id="n1", text="walk")])])
    with pytest.raises(ValueError, match="no enabled anomaly rules"):
        TriggerStage(empty, NORMAL)


def test_smoothing_and_spans():
    flags = [0, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0]
    assert centred_mean([0, 0, 3, 0, 0], 3).tolist() == [0, 1, 1, 1, 0]
    assert ema([1, 1, 1]).tolist() == [1, 1, 1]
    assert majority(flags, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    assert event_spans(flags, min_length=2) == [(5, 8)]
    assert smooth([1.0, 2.0], "none").tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown smoothing"):
        smooth([1.0], "median")


def test_scores_equal_in_exact_arithmetic_compare_equal_through_smoothing():
    """No label from float noise: a run of 0.1s smooths to 0.1 by every method (a float sum of 61 of them does
    not), float32 noise of a zero distance smooths to 0, and a threshold at a quantile of equal normal scores
    flags none of them."""
    import numpy as np

    tenths = [0.1] * 200
    for method in ("none", "mean", "ema"):
        assert set(smooth(tenths, method, 61).tolist()) == {smooth([0.1], "none")[0]}
    noise = smooth([5.96e-08, 4.59e-08, 0.0, 1.1e-07] * 30, "mean", 61)
    assert not noise.any()
    normal = smooth(np.r_[[0.1] * 150, [0.3] * 150], "mean", 61)
    assert not (normal[:100] > np.quantile(normal[:100], 0.95)).any()
    assert (normal[:100] == normal[0]).all() and (normal[-100:] == normal[-1]).all()
    # a frame with no caption (NaN) takes its neighbours' smoothed score; with none around it, 0
    assert smooth([0.5, np.nan, 0.5], "mean", 3).tolist() == [0.5, 0.5, 0.5]
    assert smooth([np.nan, np.nan], "mean", 3).tolist() == smooth([np.nan], "none").tolist() * 2 == [0.0, 0.0]
    assert smooth([0.5, np.nan, 0.25], "ema", alpha=0.5).tolist() == [0.5, 0.5, 0.375]


def test_a_bad_video_is_skipped_with_its_problem_and_the_others_load(tmp_path):
    walks = [("a man walks", 0), ("a man walks", 0)]
    root = write_caption_set(tmp_path / "set", {"v1": walks, "v2": walks, "v3": walks, "v4": walks, "v5": walks})
    (root / "test_frame" / "v1.csv").write_text("image_path,label\nx,0\n")
    (root / "test_frame_description" / "v2.txt").write_text("")
    (root / "test_frame" / "v3.csv").unlink()
    (root / "test_frame" / "v4.csv").write_text("image_path,label\nx,0\ny,maybe\n")
    videos, problems = load_caption_set(root)
    assert [v.video for v in videos] == ["v5"] and len(problems) == 4
    for problem, expected in zip(
        problems.values(),
        (
            "v1.txt: 2 caption lines but 1 labels in v1.csv",
            "v2.txt: empty video",
            "v3.csv: label file missing",
            "v4.csv: labels must be 0 or 1",
        ),
        strict=True,
    ):
        assert expected in problem
    (root / "test_frame_description" / "v5.txt").unlink()
    with pytest.raises(LayoutError, match="no readable video .first problem: .*v1.txt: 2 caption lines"):
        load_caption_set(root)
    with pytest.raises(LayoutError, match="missing folder test_frame_description/"):
        load_caption_set(tmp_path)


def test_split_is_every_third_video(tmp_path):
    root = write_caption_set(tmp_path, {f"v{i}": [("a man walks", 0)] for i in range(7)})
    reference, held_out = split_videos(load_caption_set(root)[0], 3)
    assert [v.video for v in reference] == ["v0", "v3", "v6"]
    assert len(held_out) == 4


def test_novelty_with_minilm_ranks_unfamiliar_sentences_higher():
    from axr.reasoning.embedding import Embedder

    stage = TriggerStage(book("Riding a bicycle"), NORMAL, Embedder(cache=None))
    familiar, novel = stage.score(["A man is walking with a backpack.", "A car is burning in the middle of the road."])
    assert novel.novelty > familiar.novelty + 0.2
    assert novel.novel_sentence.startswith("A car is burning")


def test_synonyms_from_observations_extend_keywords():
    from axr.reasoning.embedding import Embedder

    stage = TriggerStage(book("Vehicles on the walkway"), NORMAL, Embedder(cache=None))
    added = stage.add_synonyms(["A car drives by."] * 3 + ["A man walks."] * 3)
    assert added.get("car") == "vehicle"
    assert stage.keyword_hits("A red car.") == {"a1": ["car"]}
    assert "walk" not in added  # common in the normal references


def test_a_synonym_matches_a_rule_by_meaning():
    from axr.reasoning.embedding import Embedder

    stage = TriggerStage(book("Riding a bicycle on the walkway"), NORMAL, Embedder(cache=None))
    added = stage.add_synonyms(["A cyclist crosses the square."] * 3 + ["A bike passes."] * 3, threshold=0.7)
    assert added == {"cyclist": "bicycle", "bike": "bicycle"}
    assert stage.score(["A cyclist crosses the square."])[0].keyword_hits == {"a1": ["cyclist"]}


def test_a_long_caption_with_one_anomalous_clause_scores_above_its_normal_twin():
    from axr.reasoning.embedding import Embedder

    long_normal = (
        "The scene is a wide courtyard with trees and a building, where two people are walking on the pathway, "
        "a man is walking with a backpack and three people are walking towards the building."
    )
    twin = long_normal.replace("a man is walking with a backpack", "a car is burning with thick black smoke")
    assert len(clauses(twin)) > 1 and "a car is burning with thick black smoke" in clauses(twin)
    references = [*NORMAL, long_normal]
    for unit in ("sentence", "clause"):
        stage = TriggerStage(
            book("Riding a bicycle"), references, Embedder(cache=None), TriggerSettings(novelty_unit=unit)
        )
        normal, anomalous = stage.score([long_normal, twin])
        assert anomalous.score > normal.score
    assert anomalous.novel_sentence == "a car is burning with thick black smoke"
    assert anomalous.novelty > 0.4  # the clause alone, not diluted by the paragraph around it


def test_smoothing_windows_are_in_seconds_of_the_sets_own_time():
    from axr.reasoning.settings import SmoothingSettings

    seconds = SmoothingSettings()  # 2.5 s
    assert seconds.window_lines(0.1) == 25  # ped2: a caption a frame at 10 fps
    assert seconds.window_lines(1 / 24) == seconds.window_lines(None) == 60  # 61 once centred (odd)
    assert seconds.window_lines(1.0) == 2  # UCF-Crime's one-second windows: 3 once centred
    assert SmoothingSettings(window=7).window_lines(0.1) == 7  # lines, when given, win
    assert len(centred_mean([0.0] * 10 + [1.0] + [0.0] * 10, seconds.window_lines(1.0)).nonzero()[0]) == 3
