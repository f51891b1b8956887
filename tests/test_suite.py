"""`axr eval suite` and the AnomalyRuler-base baseline AXR computes beside its own figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from axr.eval import anomalyruler_base
from axr.eval.suite import BASELINE, CaptionSet, Variant, measure_set
from tests.captions_layout import synthetic_videos, write_caption_set
from tests.conftest import SHARED_DATA, run_axr

MORE = SHARED_DATA / "more-captions"


def test_ewm_is_pandas_adjusted_ewm_and_the_scores_follow_the_shipped_procedure():
    values = np.random.default_rng(0).random(50)
    for alpha in (0.33, 0.05, 1.0):
        expected = pd.Series(values).ewm(alpha=alpha, adjust=True).mean().to_numpy()
        assert np.allclose(anomalyruler_base.ewm_adjusted(values, alpha), expected)
    captions = ["a man walks"] * 5 + ["a man riding a bicycle"] * 3 + ["a man walks"] * 4
    flags = pd.Series([0.0] * 5 + [1.0] * 3 + [0.0] * 4)
    smoothed = flags.ewm(alpha=0.33, adjust=True).mean()
    votes = (smoothed > smoothed.mean()).astype(float)
    expected = votes.ewm(alpha=smoothed.mean(), adjust=True).mean().to_numpy()
    assert np.allclose(anomalyruler_base.video_scores(captions), expected)
    assert anomalyruler_base.flags(["Riding", "riding", "bicycles"]).tolist() == [0.0, 1.0, 1.0]  # case-sensitive


@pytest.mark.parametrize("task, expected", [("ped2", 90.80), ("shtech", 83.83)])
def test_the_baseline_reproduces_its_published_procedure_on_the_embedded_sets(task, expected):
    row = measure_set(CaptionSet.parse(task), [], embedder=None)
    assert row[BASELINE]["pooled"] == pytest.approx(expected, abs=0.011)  # BASELINE.md, held-out videos


@pytest.mark.skipif(not MORE.is_dir(), reason="../shared/data/more-captions is absent")
@pytest.mark.parametrize(
    "folder, task, expected",
    [("vadsk-ped2-llama", "ped2", 89.52), ("vadsk-ped2-minicpm", "ped2", 76.29), ("ucf-corevad", "ucf-crime", 59.89)],
)
def test_the_baseline_reproduces_its_figures_on_other_captioners(folder, task, expected):
    row = measure_set(CaptionSet.parse(f"{task}@{MORE / folder}"), [], embedder=None)
    assert row["set"] == folder and row[BASELINE]["pooled"] == pytest.approx(expected, abs=0.011)


def test_suite_on_generated_sets_prints_every_setting_beside_the_baseline(tmp_path):
    book = tmp_path / "rules.txt"
    book.write_text("**Rules for Anomaly Human Activities:**\n1. Riding a bicycle or skateboard\n")
    sets = []
    for name, n_videos in (("first", 6), ("second", 9)):
        write_caption_set(tmp_path / name, synthetic_videos(n_videos, 60))
        sets.append(f"captions@{tmp_path / name}")
    out = tmp_path / "suite.json"
    result = run_axr(
        "eval", "suite", *sets, "--set", f"pipeline.rules={book}", "--set", "dataset.line_seconds=0.1",
        "--variant", "axr", "--variant", "drop:pipeline.trigger.keywords=drop,pipeline.trigger.novelty=false",
        "--out", str(out),
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["set"] for r in rows] == ["first", "second", "mean"]
    assert [r["evaluated_videos"] for r in rows] == [4, 6, 10]
    for row in rows:
        assert row["axr"]["pooled"] == 100.0 and row["drop"]["pooled"] == 100.0
        assert 50 < row[BASELINE]["pooled"] <= 100  # "riding" is one of its fixed words
    table = " ".join(result.stdout.split())
    assert "AnomalyRuler-base" in table and "first" in table and "100.00 / 100.00" in table


def test_suite_refuses_what_it_cannot_run_in_one_line(tmp_path):
    result = run_axr("eval", "suite", "mvtec_ad", check=False)
    assert result.returncode == 2 and "mvtec_ad: not a caption task" in result.stderr
    result = run_axr("eval", "suite", f"ped2@{tmp_path / 'none'}", check=False)
    assert result.returncode == 2 and "missing folder test_frame_description/" in result.stderr
    assert Variant.parse("w:pipeline.smoothing.window=3,pipeline.trigger.novelty=false").overrides == {
        "pipeline.smoothing.window": 3,
        "pipeline.trigger.novelty": False,
    }
