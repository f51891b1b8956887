"""Training: rewards (with a table of hacking attempts), synthetic anomalies, data builders, recipe checks,
and real TRL runs on the tiny VLM: SFT that learns the Verdict format, GRPO with every reward, merged export."""

import doctest
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from axr.eval.datasets import load_samples
from axr.reasoning.backends import Sampling, load_backend, user
from axr.reasoning.schema import VerdictAnswer
from axr.training import rewards
from axr.training.rewards import format_reward, parse_answer, rules_reward, type_reward, verdict_reward
from tests.conftest import REPO, run_axr

GOOD = '{"verdict": "anomalous", "score": 0.9, "anomaly_type": "scratch"}'


def test_reward_doctests():
    assert doctest.testmod(rewards).failed == 0


# A policy tries these to collect reward without a right answer; none may score on format or verdict.
HACKS = [
    ("two answers", f"<think>x</think><answer>{GOOD}</answer><answer>{GOOD}</answer>"),
    ("empty answer", "<think>it is anomalous</think><answer></answer>"),
    ("answer outside tags", f"<think>x</think>{GOOD}"),
    ("prose around the JSON", f"The verdict is: {GOOD}"),
    ("markdown fence", f"```json\n{GOOD}\n```"),
    ("both labels", '{"verdict": "anomalous normal", "score": 0.5}'),
    ("a list of verdicts", f"[{GOOD}, {GOOD.replace('anomalous', 'normal')}]"),
    ("extra keys", '{"verdict": "anomalous", "score": 0.9, "reward": 1}'),
    ("score out of range", '{"verdict": "anomalous", "score": 7}'),
    ("think nested in think", f"<think><think>x</think></think><answer>{GOOD}</answer>"),
    ("no score", '{"verdict": "anomalous"}'),
]


@pytest.mark.parametrize("name, text", HACKS, ids=[h[0] for h in HACKS])
def test_hacking_attempts_do_not_score(name, text):
    assert parse_answer(text) is None
    assert format_reward([text]) == [0.0]
    assert verdict_reward([text], label=[1]) == [0.0]
    assert type_reward([text], label=[1], anomaly_type=["scratch"]) == [0.0]


def test_rewards_on_conversational_completions_and_rules():
    completion = [{"role": "assistant", "content": f"<think>a line</think><answer>{GOOD}</answer>"}]
    assert format_reward([completion]) == [1.0] and verdict_reward([completion], label=[1]) == [1.0]
    kinds = json.dumps({"n1": "normal", "a1": "anomaly"})
    cites = '{"verdict": "anomalous", "score": 0.9, "rules_matched": ["%s"]}'
    assert rules_reward([cites % "a1", cites % "n1", cites % "zz"], rule_kinds=[kinds] * 3) == [1.0, 0.0, 0.0]
    assert rules_reward([GOOD], rule_kinds=["{}"]) == [None]
    assert type_reward(['{"verdict": "normal", "score": 0.1, "anomaly_type": "scratch"}'], [0], [""]) == [0.0]


def test_unknown_reward_and_missing_columns_are_named():
    with pytest.raises(rewards.RewardError, match="unknown reward.*accuracy; known: format"):
        rewards.get_rewards(["format", "accuracy"])
    with pytest.raises(rewards.RewardError, match="'iou' needs dataset column.*box"):
        rewards.get_rewards(["iou"], columns=["prompt", "images", "label"])


@pytest.fixture()
def normal_dir(tmp_path, textile_root):
    folder = tmp_path / "normal"
    folder.mkdir()
    for path in sorted((textile_root / "nominal").glob("*.jpg"))[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def test_synthetic_anomalies_are_reproducible_and_load_as_samples(tmp_path, normal_dir):
    first = run_axr(
        "train",
        "synth",
        str(normal_dir),
        "--out",
        str(tmp_path / "a"),
        "--per-image",
        "2",
        "--subject",
        "woven textile",
    )
    assert "samples.jsonl" in first.stderr
    run_axr(
        "train",
        "synth",
        str(normal_dir),
        "--out",
        str(tmp_path / "b"),
        "--per-image",
        "2",
        "--subject",
        "woven textile",
    )
    run_axr("train", "synth", str(normal_dir), "--out", str(tmp_path / "c"), "--per-image", "2", "--seed", "1")
    a, b, c = ((tmp_path / x / "images" / "00001_stain_0.png").read_bytes() for x in "abc")
    assert a == b and a != c  # the same seed gives the same defect, another seed another
    test = load_samples("jsonl", tmp_path / "a", "test")
    train = load_samples("jsonl", tmp_path / "a", "train")
    assert len(train) == len(test) == 6 and sum(s.gt_label for s in test) == 4
    assert {s.gt_type for s in train + test if s.gt_label} == {"cut_paste", "scratch", "stain", "noise_blob"}
    from PIL import Image

    for sample in (s for s in test if s.gt_label):
        mask = np.asarray(Image.open(sample.gt_mask)) > 0
        height, width = mask.shape
        x0, y0, x1, y1 = sample.gt_box
        assert (
            mask.any()
            and mask[int(y0 * height) : int(np.ceil(y1 * height)), int(x0 * width) : int(np.ceil(x1 * width))].sum()
            == mask.sum()
        )
        assert "woven textile" in sample.gt_rationale.what
    bad = run_axr("train", "synth", str(normal_dir), "--out", str(tmp_path / "d"), "--kinds", "dent", check=False)
    assert bad.returncode == 2 and "unknown defect kind(s) dent" in bad.stderr


@pytest.fixture(scope="module")
def synth_task(tmp_path_factory, textile_root):
    """A task over a synthetic set (boxes, types) with a rule book, so that every reward has its column."""
    root = tmp_path_factory.mktemp("synth")
    (root / "normal").mkdir()
    for path in sorted((textile_root / "nominal").glob("*.jpg"))[:4]:
        shutil.copy(path, root / "normal" / path.name)
    run_axr("train", "synth", str(root / "normal"), "--out", str(root / "synth"), "--per-image", "1")
    book = {
        "name": "surface",
        "sections": [
            {
                "name": "appearance",
                "normal": [{"id": "n1", "text": "uniform weave"}],
                "anomaly": [{"id": "a1", "text": "a stain or a scratch"}],
            }
        ],
    }
    (root / "rules.yaml").write_text(yaml.safe_dump(book))
    pipeline = {"rules": str(root / "rules.yaml"), "references": {"count": 1}, "domain": "surface"}
    task = {
        "include": str(REPO / "eval" / "tasks" / "jsonl.yaml"),
        "task": "synth",
        "pipeline": pipeline,
        "dataset": {"data_dir": str(root / "synth"), "split": "train"},
    }
    (root / "task.yaml").write_text(yaml.safe_dump(task))
    return root / "task.yaml"


def test_data_builders_write_sft_and_grpo_datasets(tmp_path, synth_task):
    from datasets import load_from_disk

    run_axr("train", "data", str(synth_task), "--kind", "sft", "--think", "--out", str(tmp_path / "sft"))
    sft = load_from_disk(str(tmp_path / "sft"))
    assert len(sft) == 4 and {"prompt", "completion", "images", "sample_id"} <= set(sft.column_names)
    for row in sft:
        slots = sum(part["type"] == "image" for message in row["prompt"] for part in message["content"])
        assert slots == len(row["images"]) == 2  # one normal reference, then the query
        answer = parse_answer(row["completion"][0]["content"][0]["text"])
        assert answer is not None and answer["verdict"] in ("normal", "anomalous")
    assert "rationale: gt" in (tmp_path / "sft" / "README.md").read_text()
    run_axr("train", "data", str(synth_task), "--kind", "grpo", "--out", str(tmp_path / "grpo"))
    grpo = load_from_disk(str(tmp_path / "grpo"))
    assert {"label", "anomaly_type", "box", "rule_kinds"} <= set(grpo.column_names)
    anomalous = [r for r in grpo if r["label"] == 1]
    assert anomalous and all(r["box"] and r["anomaly_type"] for r in anomalous)
    assert json.loads(grpo[0]["rule_kinds"]) == {"n1": "normal", "a1": "anomaly"}


def test_teacher_rationales_are_kept_only_when_the_label_agrees(tmp_path, synth_task, hf_tiny):
    from axr.eval.tasks import load_task
    from axr.training.data import build_rows

    rows, stats = build_rows(load_task(str(synth_task)), "sft", rationale="teacher", teacher=hf_tiny)
    assert stats.get("teacher_kept", 0) + stats.get("teacher_rejected", 0) == 4
    for row in rows:
        assert VerdictAnswer.model_validate_json(row["completion"][0]["content"][0]["text"])


def _recipe(tmp_path: Path, name: str, **fields) -> Path:
    data = yaml.safe_load((REPO / "training" / "recipes" / f"{name}.yaml").read_text())
    data.update(fields)
    path = tmp_path / f"{name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_recipes_and_datasets_fail_before_training(tmp_path, synth_task):
    from datasets import load_from_disk

    run_axr("train", "data", str(synth_task), "--kind", "grpo", "--out", str(tmp_path / "grpo"))
    good = str(tmp_path / "grpo")
    cases = [
        (_recipe(tmp_path, "tiny-grpo", dataset=good, rewards=["format", "accuracy"]), "unknown reward(s) accuracy"),
        (_recipe(tmp_path, "tiny-grpo", dataset=good, trainer={"max_stepz": 3}), "argument 'max_stepz'"),
        (_recipe(tmp_path, "tiny-grpo", dataset=str(tmp_path / "nowhere")), "is not a dataset folder"),
    ]
    no_label = load_from_disk(str(tmp_path / "grpo")).remove_columns(["label"])
    no_label.save_to_disk(str(tmp_path / "no-label"))
    cases.append(
        (_recipe(tmp_path, "tiny-grpo", dataset=str(tmp_path / "no-label")), "'verdict' needs dataset column")
    )
    no_image = load_from_disk(good).map(
        lambda row, i: {"images": row["images"][: 1 if i == 2 else None]}, with_indices=True
    )
    no_image.save_to_disk(str(tmp_path / "no-image"))
    cases.append((_recipe(tmp_path, "tiny-grpo", dataset=str(tmp_path / "no-image")), "row 2 has 1 image(s) for 2"))
    for recipe, message in cases:
        result = run_axr("train", "grpo", "--config", str(recipe), "--output-dir", str(tmp_path / "out"), check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()  # nothing was trained


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_the_accelerate_entry_refuses_a_bad_recipe_in_one_line(kind, tmp_path):
    """`python -m axr.training.sft|grpo` (what `accelerate launch` runs) ends a refused recipe as `axr train`
    does: one line and exit 2, no traceback."""
    import subprocess
    import sys

    other = "smollm2-scorer-grpo" if kind == "sft" else "smollm2-scorer-sft"
    for config, message in (("no-such-recipe", "unknown recipe 'no-such-recipe'"), (other, "run it with `axr train")):
        command = [sys.executable, "-m", f"axr.training.{kind}", "--config", config]
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


@pytest.mark.parametrize("path", sorted((REPO / "training" / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_into_its_trl_config(path):
    from trl import GRPOConfig, SFTConfig

    from axr.training.recipe import load_recipe, trl_config
    from axr.training.trainers import GRPO_DEFAULTS, SFT_DEFAULTS

    recipe = load_recipe(str(path))
    config_cls, defaults = (SFTConfig, SFT_DEFAULTS) if recipe.kind == "sft" else (GRPOConfig, GRPO_DEFAULTS)
    config = trl_config(recipe, config_cls, **defaults)
    assert config.output_dir == recipe.output_dir and config.learning_rate > 0


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3"])
def test_accelerate_configs_parse(name):
    config = yaml.safe_load((REPO / "training" / "accelerate" / f"{name}.yaml").read_text())
    assert config["distributed_type"] in ("MULTI_GPU", "DEEPSPEED") and config["num_processes"] >= 1
    if name != "ddp":
        assert config["deepspeed_config"]["zero_stage"] == int(name[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_vlm, synth_task):
    """SFT of the tiny VLM on the synthetic set's train split (one reference image a prompt): the run folder."""
    root = tmp_path_factory.mktemp("train")
    run_axr("train", "data", str(synth_task), "--kind", "sft", "--out", str(root / "sft-data"))  # reference + query
    recipe = _recipe(
        root,
        "tiny-sft",
        trainer={
            "learning_rate": 5e-3,
            "max_steps": 200,
            "logging_steps": 10,
            "per_device_train_batch_size": 4,
            "save_strategy": "no",
        },
    )
    sft = run_axr(
        "train", "sft", "--config", str(recipe), "--dataset", str(root / "sft-data"), "--output-dir", str(root / "sft")
    )
    return root, sft


def test_sft_drives_the_loss_down_and_the_model_then_writes_valid_verdicts(trained):
    root, result = trained
    summary = json.loads((root / "sft" / "axr_training.json").read_text())
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert losses[-1] < 0.05 * losses[0]  # measured: 5.4 -> 0.017 over 200 steps
    assert "sft curve" in result.stdout
    from datasets import load_from_disk

    from axr.reasoning.backends import load_backend
    from axr.reasoning.backends.base import Sampling, system, user

    backend = load_backend("hf", str(root / "sft"), constrained=False)  # no grammar: the model alone
    rows = load_from_disk(str(root / "sft-data")).select(range(4))
    requests = [
        [system(r["prompt"][0]["content"][0]["text"]), user("Judge the last image.", r["images"])] for r in rows
    ]
    completions = backend.generate(requests, Sampling(max_tokens=320), VerdictAnswer)
    assert all(c.parsed is not None and not c.repaired for c in completions)


def test_grpo_with_every_reward_changes_the_parameters_and_the_export_reloads(trained, synth_task, tmp_path):
    root, _ = trained
    run_axr("train", "data", str(synth_task), "--kind", "grpo", "--out", str(tmp_path / "grpo-data"))
    result = run_axr(
        "train",
        "grpo",
        "--config",
        "tiny-grpo",
        "--model",
        str(root / "sft"),
        "--dataset",
        str(tmp_path / "grpo-data"),
        "--output-dir",
        str(tmp_path / "grpo"),
    )
    history = json.loads((tmp_path / "grpo" / "axr_training.json").read_text())["log_history"]
    logged = {k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")}
    assert {f"rewards/{n}_reward/mean" for n in ("format", "verdict", "type", "iou", "rules", "length")} <= logged
    assert "grpo curve" in result.stdout
    from safetensors.torch import load_file

    adapter = load_file(str(tmp_path / "grpo" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # LoRA B starts at zero: non-zero means it learned
    run_axr("train", "export", str(tmp_path / "grpo"), "--out", str(tmp_path / "merged"))
    import torch

    from axr.reasoning.backends import load_backend
    from axr.reasoning.backends.base import Sampling, system, user

    merged = load_backend("hf", str(tmp_path / "merged"))  # a plain model folder: no peft involved
    adapted = load_backend("hf", str(root / "sft"), adapter=str(tmp_path / "grpo"))
    base = load_backend("hf", str(root / "sft"))
    inputs = merged.processor(text=["Judge the last image."], return_tensors="pt")
    with torch.inference_mode():
        exported = merged.net(**inputs).logits
        assert torch.allclose(exported, adapted.net(**inputs).logits, atol=1e-4)  # the adapter, merged in
        assert not torch.allclose(exported, base.net(**inputs).logits, atol=1e-4)
    from PIL import Image

    (completion,) = merged.generate(
        [[system("Judge."), user("Judge the last image.", [Image.new("RGB", (64, 64))])]],
        Sampling(max_tokens=120),
        VerdictAnswer,
    )
    # constrained decoding through hf on the exported model; a model of random weights fills strings with
    # whatever it likes, so whether it closes its JSON within 120 tokens is chance, not the export's doing
    assert completion.error is None and completion.text.startswith('{"') and completion.tokens_out > 0


@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8, "dropout": 0.0}], ids=["full", "lora"])
def test_resume_continues_from_the_checkpoints_weights(tmp_path, trained, lora):
    """A run stopped right after checkpoint-5 (as a killed one would be) and resumed logs the same losses at
    steps 6-10 as a run never stopped: the weights come back, not only the step and the optimizer."""
    from transformers import TrainerCallback

    from axr.reasoning.schema import SchemaError
    from axr.training.recipe import Recipe
    from axr.training.trainers import run_sft

    class StopAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = True

    trainer = {
        "learning_rate": 5e-3,
        "max_steps": 10,
        "per_device_train_batch_size": 4,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 5,
        "lr_scheduler_type": "constant",
        "seed": 0,
    }
    data = trained[0] / "sft-data"

    def recipe(name: str) -> Recipe:
        out = str(tmp_path / name)
        return Recipe(
            kind="sft", model="tiny-qwen2.5-vl", dataset=str(data), output_dir=out, lora=lora, trainer=trainer
        )

    def later_losses(summary: dict) -> list[float]:
        return [h["loss"] for h in summary["log_history"] if "loss" in h and h["step"] > 5]

    whole = run_sft(recipe("whole"))
    run_sft(recipe("cut"), callbacks=[StopAfterSave()])
    resumed = run_sft(recipe("cut"), resume=True)
    assert len(later_losses(whole)) == 5 and later_losses(resumed) == pytest.approx(later_losses(whole), rel=1e-4)
    with pytest.raises(SchemaError, match="no checkpoint-"):
        run_sft(recipe("never"), resume=True)


@pytest.mark.slow
def test_caption_reasoner_rows_come_from_reference_videos_and_sft_then_grpo_train_smollm2(tmp_path, smollm2):
    """`axr train data` on a caption task builds the re-check's own prompts from the reference videos only
    (anomalous frames whose caption names no rule left out); SFT, then GRPO, train the text model SmolLM2."""
    from datasets import load_from_disk

    from axr.eval.tasks import load_task
    from tests.captions_layout import ANOMALOUS, NORMAL, write_caption_set

    frames = [(NORMAL[i % 3], 0) for i in range(6)] + [(ANOMALOUS[0], 1), ("A man stands still.", 1)]
    data_dir = write_caption_set(tmp_path / "set", {f"v{i}": frames for i in range(4)})  # v0, v3: references
    rules = tmp_path / "rules.yaml"
    book = {
        "name": "walkway",
        "sections": [{"name": "human activity", "anomaly": [{"id": "a1", "text": "Riding a bicycle"}]}],
    }
    rules.write_text(yaml.safe_dump(book))
    out = tmp_path / "rows"
    data = ("train", "data", "captions", "--data-dir", str(data_dir), "--out", str(out))
    result = run_axr(*data, "--kind", "sft", "--rationale", "template", check=False)
    assert result.returncode == 2 and "rule book file" in result.stderr  # the task names no rules yet
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump(load_task("captions", {"pipeline.rules": str(rules)}).model_dump(mode="json")))
    run_axr("train", "data", str(task), "--data-dir", str(data_dir), "--out", str(out), "--kind", "sft")
    rows = load_from_disk(str(out))
    assert {r["sample_id"].split("/")[0] for r in rows} == {"v0", "v3"}  # evaluated videos never used
    answers = [VerdictAnswer.model_validate_json(r["completion"][0]["content"]) for r in rows]
    anomalous = [a for a in answers if a.verdict == "anomalous"]
    assert len(anomalous) == 2 and all(a.rules_matched == ["a1"] for a in anomalous)  # the silent one left out
    assert rows[0]["prompt"][0]["role"] == "system" and "a1" in rows[0]["prompt"][0]["content"]
    assert "anomalous_without_matching_rule: 2" in (out / "README.md").read_text()
    recipe = _recipe(
        tmp_path,
        "smollm2-caption-sft",
        dataset=str(out),
        trainer={"max_steps": 2, "logging_steps": 1, "save_strategy": "no"},
    )
    run_axr("train", "sft", "--config", str(recipe), "--output-dir", str(tmp_path / "reasoner"))
    trained = json.loads((tmp_path / "reasoner" / "axr_training.json").read_text())
    assert (tmp_path / "reasoner" / "model.safetensors").is_file() and trained["global_step"] == 2
    # a LoRA-trained text reasoner exports as one merged model folder that loads with no peft
    lora = _recipe(tmp_path, "smollm2-caption-sft", dataset=str(out), lora={}, trainer={"max_steps": 1})
    run_axr("train", "sft", "--config", str(lora), "--output-dir", str(tmp_path / "lora"))
    run_axr("train", "export", str(tmp_path / "lora"), "--out", str(tmp_path / "merged"))
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    merged = load_backend("hf", str(tmp_path / "merged"))
    assert merged.generate([[user("Say hi.")]], Sampling(max_tokens=4))[0].tokens_out > 0
    # then GRPO of the SFT result with the verdict, format and rules rewards (labels from the same split)
    grpo_rows = tmp_path / "grpo-rows"
    run_axr("train", "data", str(task), "--data-dir", str(data_dir), "--out", str(grpo_rows), "--kind", "grpo")
    assert sorted(load_from_disk(str(grpo_rows))["label"]) == [0, 0, 1, 1]
    grpo = _recipe(
        tmp_path,
        "smollm2-caption-grpo",
        model=str(tmp_path / "reasoner"),
        dataset=str(grpo_rows),
        trainer={"max_steps": 1, "per_device_train_batch_size": 4, "max_completion_length": 32, "save_strategy": "no"},
    )
    run_axr("train", "grpo", "--config", str(grpo), "--output-dir", str(tmp_path / "grpo"))
    rewarded = json.loads((tmp_path / "grpo" / "axr_training.json").read_text())
    assert rewarded["global_step"] == 1 and any("rewards/verdict_reward/mean" in e for e in rewarded["log_history"])
