"""Detected events and their explanations: runs of flagged frames, each explained once by the model.
Pure logic first, then SmolLM2 explaining the events of `axr detect` through hf."""

from __future__ import annotations

import json

import numpy as np

from axr.reasoning.events import Event, event_observation, find_events


def test_flagged_runs_become_events_and_near_runs_join():
    scores = {"v": np.array([0, 0.9, 0.8, 0, 0, 0.7, 0, 0, 0, 0, 0.95, 0]), "quiet": np.zeros(5)}
    events = find_events(scores, threshold=0.5, line_seconds=1.0, merge_gap_seconds=2.0)
    assert [(e.start, e.end) for e in events] == [(1, 5), (10, 10)]  # a 2-line gap joins, a 4-line gap does not
    assert events[0].peak == 0.9 and events[0].seconds == (1.0, 6.0)  # from line 1's start to line 5's end
    apart = find_events(scores, threshold=0.5, line_seconds=1.0, merge_gap_seconds=0.0)
    assert [(e.start, e.end) for e in apart] == [(1, 2), (5, 5), (10, 10)]
    assert find_events({"v": np.zeros(3)}, 0.5, 1.0, 1.0) == []


def test_an_event_shows_its_distinct_captions_spread_over_it():
    captions = [f"caption {i // 2}" for i in range(40)]  # each caption twice in a row: 20 distinct
    text = event_observation(Event("v", 0, 39, 1.0, line_seconds=0.5), captions, max_captions=4)
    shown = [line for line in text.splitlines() if line.startswith("- [")]
    assert shown == ["- [0.0 s] caption 0", "- [6.0 s] caption 6", "- [13.0 s] caption 13", "- [19.0 s] caption 19"]
    assert "4 of 20 distinct" in text and "from 0.0 s to 20.0 s (40 frames)" in text


def test_detect_scores_each_caption_explains_each_event_once_and_a_rerun_asks_nothing(smollm2, tmp_path):
    from tests.conftest import run_axr

    normal = ["A man is walking on the pathway.", "Two people are walking past the trees."]
    odd = "A truck drives fast through the crowd on the pathway."
    (tmp_path / "normal.txt").write_text("\n".join(normal * 20) + "\n")  # one caption a line, a line a second
    (tmp_path / "cam.txt").write_text("\n".join(normal * 10 + [odd] * 6 + normal * 10) + "\n")
    book = tmp_path / "rules.txt"
    book.write_text("**Rules for Anomaly Non-Human Objects:**\n1. Vehicles such as trucks or cars\n")
    args = [
        "detect",
        str(tmp_path / "cam.txt"),
        "--rules",
        str(book),
        "--reference",
        str(tmp_path / "normal.txt"),
    ]
    args += ["--fps", "1", "--score", "--events", "--explain", "--backend", "hf", "--model", str(smollm2)]
    args += ["--out", str(tmp_path / "verdicts.jsonl")]
    env = {"AXR_CACHE": str(tmp_path / "cache")}
    result = run_axr(*args, env=env)
    verdicts = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert all(0 <= v["meta"]["model_score"] <= 1 for v in verdicts)  # each caption scored, 3 distinct
    assert len((tmp_path / "cache" / "caption-scores.jsonl").read_text().splitlines()) == 3
    events = [json.loads(line) for line in (tmp_path / "verdicts.events.jsonl").read_text().splitlines()]
    assert events and all(15 <= e["start_frame"] <= e["end_frame"] <= 30 for e in events)  # around the truck
    for event in events:  # one generated answer each, the model's own, kept whatever it says
        assert event["verdict"]["verdict"] in ("normal", "anomalous", "unparsed")
        assert event["verdict"]["meta"]["tokens_out"] > 0
    assert "event cam/" in result.stdout
    journal = next(tmp_path.glob("events-*.jsonl"))
    before = journal.read_text()
    run_axr(*args, env=env)
    assert journal.read_text() == before  # answered before: not asked again
