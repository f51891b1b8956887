"""`axr induce` and `axr detect` end to end with real models: SmolLM2 on the vLLM server, the tiny VLM."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from axr.reasoning.deduction import merge_recheck, select_for_recheck
from axr.reasoning.embedding import Embedder
from axr.reasoning.induction import _aggregate, seeded_batches
from axr.reasoning.schema import InducedRules, RuleBook, Verdict
from axr.reasoning.settings import InductionSettings
from tests.captions_layout import ANOMALOUS, NORMAL
from tests.conftest import run_axr, write_mp4

BOOK = {
    "name": "walkway",
    "sections": [
        {
            "name": "human activity",
            "normal": [{"id": "n1", "text": "Walking on the pathway"}],
            "anomaly": [{"id": "a1", "text": "Riding a bicycle or skateboard"}],
        }
    ],
}


def test_seeded_batches_are_reproducible():
    config = InductionSettings(batches=4, per_batch=3, seed=7)
    assert seeded_batches(20, config) == seeded_batches(20, config)
    assert seeded_batches(20, config) != seeded_batches(20, InductionSettings(batches=4, per_batch=3, seed=8))
    assert all(len(set(b)) == 3 for b in seeded_batches(20, config))


def _verdicts(*labels, confidence=0.9):
    return [
        Verdict(sample_id=str(i), verdict=label, score=0.5, confidence=confidence)
        if label != "unparsed"
        else Verdict.unparsed("??", "no JSON", sample_id=str(i))
        for i, label in enumerate(labels)
    ]


def _auc(labels, scores):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(labels, scores)


def test_recheck_merge_moves_frames_across_the_threshold_and_keeps_order_otherwise():
    scores = np.array([0.1, 0.45, 0.48, 0.52, 0.55, 0.9])
    chosen = select_for_recheck("uncertain", scores, 0.5, 0.1)
    assert chosen.tolist() == [1, 2, 3, 4]
    labels = [0, 0, 1, 0, 1, 1]
    # a model with nothing to say (the same label everywhere) leaves the order, and so the AUC, as it was
    same = merge_recheck(scores, chosen, _verdicts(*["normal"] * 4), 0.5, 0.1)
    assert (np.argsort(same) == np.argsort(scores)).all() and (same[chosen] < 0.5).all()
    assert _auc(labels, same) == _auc(labels, scores)
    # a right model clears the false alarm (0.52) and raises the miss (0.48); frames outside the band stay
    right = merge_recheck(scores, chosen, _verdicts("normal", "anomalous", "normal", "anomalous"), 0.5, 0.1)
    assert right[[0, 5]].tolist() == [0.1, 0.9]
    assert right[3] < 0.5 < right[2] and _auc(labels, right) == 1.0 > _auc(labels, scores)
    # unparsed and unsure answers leave their frames alone
    unsure = _verdicts("unparsed", "normal", "normal", "anomalous")
    unsure[2].confidence = 0.2
    kept = merge_recheck(scores, chosen, unsure, 0.5, 0.1)
    assert kept[1] == 0.45 and kept[3] == 0.52 and kept[2] < 0.5


def test_recheck_of_positives_can_clear_them():
    scores = np.array([0.2, 0.7, 0.8, 0.95])
    chosen = select_for_recheck("positives", scores, 0.5, 0.1)
    merged = merge_recheck(scores, chosen, _verdicts("normal", "anomalous", "normal"), 0.5, 0.1)
    assert merged[1] < 0.5 and merged[3] < 0.5 and merged[2] == 0.8 and merged[0] == 0.2
    assert merged[1] < merged[3]  # the trigger's order kept within the cleared frames


def test_aggregation_merges_paraphrases_and_counts_support():
    answers = [
        InducedRules(sections=[{"name": "human activity", "rules": [{"text": "People walk on the path."}]}]),
        InducedRules(sections=[{"name": "Human activity", "rules": [{"text": "people walk on the path"}]}]),
        InducedRules(sections=[{"name": "human activity", "rules": [{"text": "Cars are parked in the lot"}]}]),
    ]
    merged = _aggregate(answers, "human activity", ["human activity", "environment"], Embedder(cache=None), 0.85)
    assert [(c.text, len(c.batches)) for c in merged] == [
        ("People walk on the path", 2),
        ("Cars are parked in the lot", 1),
    ]


@pytest.mark.slow
def test_induce_with_smollm2_through_hf_writes_a_book_with_anomaly_rules(tmp_path, smollm2):
    """The in-process hf path, constrained by xgrammar as vLLM is: a section must propose at least one rule
    (without that the small model answered `"rules": []` every time and induction ended with nothing)."""
    refs = tmp_path / "normal.txt"
    refs.write_text("\n".join(NORMAL * 3) + "\n")
    out = tmp_path / "rules.yaml"
    args = ["--backend", "hf", "--model", "smollm2", "--batches", "2", "--per-batch", "2", "--out", str(out)]
    run_axr("induce", str(refs), *args)
    book = RuleBook.load(out)
    assert book.rules("normal") and book.rules("anomaly") and book.provenance.backend == "hf"
    assert book.provenance.induction.batches == 2 and book.provenance.induction.per_batch == 2


def test_induce_with_smollm2_writes_a_valid_rule_book(tmp_path, vllm_server):
    refs = tmp_path / "normal.txt"
    refs.write_text("\n".join(NORMAL * 3) + "\n")
    out = tmp_path / "rules.yaml"
    run_axr(
        "induce",
        str(refs),
        "--backend",
        "openai",
        "--model",
        "smollm2",
        "--base-url",
        vllm_server.base_url,
        "--batches",
        "3",
        "--per-batch",
        "2",
        "--out",
        str(out),
    )
    book = RuleBook.load(out)
    assert book.rules("anomaly") and book.provenance.model == "smollm2"
    assert book.provenance.seeds == [0] and len(book.provenance.reference_ids) >= 2
    assert book.provenance.cost.model_calls >= 3 + 3 + 1 and book.provenance.cost.tokens_in > 0  # n+n+1
    assert all(1 <= r.support <= 3 for r in book.rules())
    walk_share = sum("walk" in t.lower() for t in NORMAL) / len(NORMAL)
    assert walk_share == 1 and all("walk" not in k for r in book.rules("anomaly") for k in r.keywords)


def test_detect_captions_explain_and_verdicts(tmp_path):
    video = tmp_path / "clip.txt"
    video.write_text("\n".join([NORMAL[0]] * 5 + [ANOMALOUS[0]] * 5 + [NORMAL[1]] * 5) + "\n")
    refs = tmp_path / "normal.txt"
    refs.write_text("\n".join(NORMAL) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    out = tmp_path / "verdicts.jsonl"
    result = run_axr(
        "detect",
        str(video),
        "--rules",
        str(rules),
        "--reference",
        str(refs),
        "--window",
        "1",
        "--explain",
        "--out",
        str(out),
    )
    verdicts = [Verdict.model_validate_json(x) for x in out.read_text().splitlines()]
    assert [v.verdict for v in verdicts] == ["normal"] * 5 + ["anomalous"] * 5 + ["normal"] * 5
    assert verdicts[5].rules_matched == ["a1"] and "bicycle" in verdicts[5].evidence[0]
    assert "breaks [a1] Riding a bicycle or skateboard" in result.stdout
    assert all(0 <= v.score <= 1 for v in verdicts)


def test_detect_direct_with_tiny_vlm_and_references(tmp_path, tiny_vlm):
    rng = np.random.default_rng(0)
    for name in ("part", "good"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "v.jsonl"
    result = run_axr(
        "detect",
        str(tmp_path / "part.png"),
        str(tmp_path / "broken.png"),
        "--direct",
        "--reference",
        str(tmp_path / "good.png"),
        "--backend",
        "hf",
        "--model",
        str(tiny_vlm),
        "--out",
        str(out),
    )
    verdict, skipped = [json.loads(x) for x in out.read_text().splitlines()]
    assert verdict["sample_id"] == "part" and verdict["meta"]["references"] == 1
    assert verdict["verdict"] in ("normal", "anomalous", "unparsed")
    assert "broken.png: not an image" in result.stderr  # said, and recorded with its error
    assert skipped["sample_id"] == "broken" and "broken.png: not an image" in skipped["error"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("detect", "x.txt"), "no such file or folder"),
        (("detect", "{video}"), "--rules is required"),
        (("detect", "{video}", "--rules", "{video}"), "no anomaly rules found"),
        (("detect", "{video}", "--rules", "{rules}", "--recheck", "maybe"), "--recheck must be one of"),
        (("induce", "{empty}", "--backend", "openai"), "empty caption file"),
        (  # nothing listens on the discard port: the request's own error, not "empty or unparsable answers"
            ("induce", "{video}", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1"),
            "induction stopped: http://127.0.0.1:9/v1/chat/completions: cannot connect",
        ),
    ],
)
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    (tmp_path / "video.txt").write_text("a man walks\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(BOOK))
    paths = {"video": tmp_path / "video.txt", "rules": tmp_path / "rules.yaml", "empty": tmp_path / "empty.txt"}
    result = run_axr(*[a.format(**paths) for a in args], "--out", str(tmp_path / "o"), check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_detect_with_recheck_by_smollm2(tmp_path, vllm_server):
    video = tmp_path / "clip.txt"
    video.write_text("\n".join([NORMAL[0]] * 3 + [ANOMALOUS[0]] * 3) + "\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    out = tmp_path / "v.jsonl"
    run_axr(
        "detect",
        str(video),
        "--rules",
        str(rules),
        "--recheck",
        "all",
        "--backend",
        "openai",
        "--model",
        "smollm2",
        "--base-url",
        vllm_server.base_url,
        "--window",
        "1",
        "--out",
        str(out),
    )
    verdicts = [Verdict.model_validate_json(x) for x in out.read_text().splitlines()]
    assert all(v.meta["stage"] == "trigger+recheck" for v in verdicts)
    assert all(v.meta["recheck"]["verdict"] in ("normal", "anomalous", "unparsed") for v in verdicts)
    assert "bicycle" in verdicts[3].evidence[0]  # the trigger evidence stays, whatever the model said


def test_detect_direct_on_video_frames_is_smoothed(tmp_path, tiny_vlm):
    pytest.importorskip("av")
    path = write_mp4(tmp_path / "clip.mp4", 12)
    out = tmp_path / "v.jsonl"
    run_axr(
        "detect",
        str(path),
        "--direct",
        "--backend",
        "hf",
        "--model",
        str(tiny_vlm),
        "--window",
        "3",
        "--out",
        str(out),
    )
    verdicts = [json.loads(x) for x in out.read_text().splitlines()]
    assert [v["sample_id"] for v in verdicts] == [f"clip/{i:06d}" for i in range(12)]
    assert all(v["verdict"] != "unparsed" for v in verdicts)  # constrained decoding, bounded fields
    assert all(
        "frame_score" in v["meta"] and v["verdict"] == ("anomalous" if v["score"] > 0.5 else "normal")
        for v in verdicts
    )


def test_detect_images_captions_them_first(textile_folder, tmp_path, tiny_vlm):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(BOOK))
    out = tmp_path / "v.jsonl"
    # The random tiny VLM needs ~1100 tokens to close a caption's JSON (detect captions with 256): caption
    # first with room, and detect reads the same caption cache, as a user's second command would.
    run_axr(
        "caption",
        str(textile_folder),
        "--backend",
        "hf",
        "--model",
        str(tiny_vlm),
        "--subject",
        "object",
        "--max-tokens",
        "1100",
        "--out",
        str(tmp_path / "captions.jsonl"),
    )
    result = run_axr(
        "detect",
        str(textile_folder),
        "--rules",
        str(rules),
        "--backend",
        "hf",
        "--model",
        str(tiny_vlm),
        "--subject",
        "object",
        "--out",
        str(out),
    )
    verdicts = [Verdict.model_validate_json(x) for x in out.read_text().splitlines()]
    assert len(verdicts) == 6 and all(v.meta["stage"] == "trigger" for v in verdicts)
    assert "corrupt.jpg" in result.stderr  # the unreadable image is reported and skipped
