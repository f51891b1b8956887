"""A short SFT-then-GRPO run whose reward curve shows the loop learning, with its throughput and memory.

The task is one a tiny model can learn: SFT on a few mixed textile images teaches the Verdict format (the
tiny model ends up calling most images anomalous), then GRPO on normal images only, rewarded for format
and a correct verdict, has to move the policy to "normal". A rising verdict reward is the loop working
(sampling, rewards, advantages, update); it is not visual skill, which a random tiny model does not have.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from axr.eval.tasks import load_task
from axr.training.data import build_rows, save_dataset
from axr.training.recipe import Recipe
from axr.training.trainers import run_grpo, run_sft


def _dataset(kind: str, split: str, limit: int, out: Path) -> Path:
    task = load_task("textile", {"dataset.split": split, "pipeline.references.count": 0})
    rows, stats = build_rows(task, kind, limit=limit)
    return save_dataset(rows, out, {"kind": kind, "split": split, **stats})


def _peak_memory_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def bench_grpo(
    workdir: Path, model: str = "tiny-qwen2.5-vl", sft_steps: int = 200, grpo_steps: int = 30, generations: int = 8
) -> dict[str, Any]:
    workdir = Path(workdir)
    sft_data = _dataset("sft", "test", 8, workdir / "sft-data")
    grpo_data = _dataset("grpo", "train", 16, workdir / "grpo-data")
    sft = Recipe(
        kind="sft",
        model=model,
        dataset=str(sft_data),
        output_dir=str(workdir / "sft"),
        lora=None,
        trainer={
            "learning_rate": 5e-3,
            "max_steps": sft_steps,
            "per_device_train_batch_size": 4,
            "logging_steps": 10,
            "save_strategy": "no",
        },
    )
    started = time.perf_counter()
    sft_summary = run_sft(sft)
    sft_seconds = time.perf_counter() - started
    grpo = Recipe(
        kind="grpo",
        model=str(workdir / "sft"),
        dataset=str(grpo_data),
        output_dir=str(workdir / "grpo"),
        lora=None,
        rewards=["format", "verdict"],
        trainer={
            "max_steps": grpo_steps,
            "learning_rate": 1e-4,
            "num_generations": generations,
            "per_device_train_batch_size": generations,
            "max_completion_length": 120,
            "temperature": 0.8,
            "logging_steps": 1,
            "save_strategy": "no",
        },
    )
    started = time.perf_counter()
    grpo_summary = run_grpo(grpo)
    grpo_seconds = time.perf_counter() - started
    curve = [
        {
            "step": h["step"],
            "reward": h["reward"],
            "format": h["rewards/format_reward/mean"],
            "verdict": h["rewards/verdict_reward/mean"],
            "completion_length": h.get("completions/mean_length"),
        }
        for h in grpo_summary["log_history"]
        if "reward" in h
    ]
    completions = grpo_steps * generations
    return {
        "model": model,
        "sft": {
            "steps": sft_steps,
            "seconds": round(sft_seconds, 1),
            "first_loss": sft_summary["log_history"][0]["loss"],
            "last_loss": [h for h in sft_summary["log_history"] if "loss" in h][-1]["loss"],
        },
        "grpo": {
            "steps": grpo_steps,
            "seconds": round(grpo_seconds, 1),
            "completions_per_s": completions / grpo_seconds,
            "curve": curve,
        },
        "peak_memory_gb": round(_peak_memory_gb(), 2),
    }
