"""SFT and GRPO with TRL's own trainers: model and processor loading, LoRA or full, a frozen vision tower,
dataset checks before training, checkpoints and resume, and a merged export that `hf` and `vllm serve` load.

Entry points: `axr train sft|grpo --config RECIPE`, or for several GPUs
`accelerate launch --config_file $(axr train configs --path zero2) -m axr.training.grpo --config RECIPE`.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

from axr.reasoning.schema import SchemaError
from axr.training.recipe import Recipe, trl_config

SFT_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-4,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 2,
    "logging_steps": 1,
    "save_strategy": "epoch",
    "report_to": "none",
    "max_length": None,
}
GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "num_generations": 4,
    "per_device_train_batch_size": 4,
    "max_completion_length": 256,
    "logging_steps": 1,
    "save_strategy": "epoch",
    "report_to": "none",
    "beta": 0.0,
}


def load_dataset_checked(recipe: Recipe):
    """The recipe's dataset, with every row's images present and, for GRPO, every column its rewards read."""
    from datasets import load_from_disk

    from axr.training.rewards import RewardError, get_rewards

    path = Path(recipe.dataset)
    if not (path / "dataset_info.json").is_file():
        raise SchemaError(f"{recipe.path}: dataset {path} is not a dataset folder (build one with `axr train data`)")
    dataset = load_from_disk(str(path))
    needed = {"prompt"} | ({"completion"} if recipe.kind == "sft" else set())
    missing = needed - set(dataset.column_names)
    if missing:
        raise SchemaError(f"{recipe.path}: dataset {path} lacks column(s) {', '.join(sorted(missing))}")
    if "images" in dataset.column_names:  # a VLM's rows (a caption reasoner's are text prompts only)
        _check_image_slots(recipe, dataset)
    if recipe.kind == "grpo":
        try:
            get_rewards(recipe.rewards, dataset.column_names)
        except RewardError as error:
            raise SchemaError(f"{recipe.path}: {error}") from None
    return dataset


def _check_image_slots(recipe: Recipe, dataset) -> None:
    for index, (prompt, images) in enumerate(zip(dataset["prompt"], dataset["images"], strict=True)):
        slots = sum(part["type"] == "image" for message in prompt for part in message["content"])
        if slots != len(images or []) or any(image is None for image in images or []):
            raise SchemaError(
                f"{recipe.path}: dataset row {index} has {len(images or [])} image(s) for {slots} "
                "image slot(s) in its prompt (an image is missing)"
            )


def model_classes(name: str, **kwargs):
    """(model loader, processor class): a VLM (image + text rows) or a text model (caption reasoners: rule
    book + caption -> verdict), told apart by the config's vision tower."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    if hasattr(AutoConfig.from_pretrained(name, **kwargs), "vision_config"):
        return AutoModelForImageTextToText, AutoProcessor
    return AutoModelForCausalLM, AutoTokenizer


def load_model(recipe: Recipe, checkpoint: str | None = None):
    """(model, processor) on the recipe's terms: dtype by device, vision tower frozen if asked, LoRA if asked;
    with `checkpoint`, the weights saved there (a full model, or the LoRA adapter on the recipe's base)."""
    import torch

    from axr.reasoning.local_models import resolve_model

    name = resolve_model(recipe.model)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    kwargs = {"trust_remote_code": recipe.trust_remote_code}
    loader, processor_class = model_classes(name, **kwargs)
    processor = processor_class.from_pretrained(name, **kwargs)
    full_checkpoint = checkpoint if recipe.lora is None else None
    model = loader.from_pretrained(full_checkpoint or name, dtype=dtype, **kwargs)
    if recipe.freeze_vision:
        for param in vision_parameters(model):
            param.requires_grad_(False)
    if recipe.lora is not None and checkpoint:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, checkpoint, is_trainable=True), processor
    if recipe.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = recipe.lora
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
            exclude_modules=r".*visual.*" if recipe.freeze_vision else None,
        )
        model = get_peft_model(model, config)
    return model, processor


def vision_parameters(model) -> list:
    """The parameters of the vision tower (Qwen-VL's `visual`, other VLMs' `vision_tower` / `vision_model`)."""
    return [
        p for name, p in model.named_parameters() if any(k in name for k in ("visual", "vision_tower", "vision_model"))
    ]


def run_sft(recipe: Recipe, resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    from trl import SFTConfig, SFTTrainer

    config = trl_config(recipe, SFTConfig, **SFT_DEFAULTS)
    dataset = load_dataset_checked(recipe)
    checkpoint = _checkpoint(recipe) if resume else None
    model, processor = load_model(recipe, checkpoint)
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=processor, callbacks=callbacks
    )
    return _finish(recipe, trainer, processor, _train(trainer, checkpoint))


def run_grpo(recipe: Recipe, resume: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    from trl import GRPOConfig, GRPOTrainer

    from axr.training.rewards import get_rewards

    defaults = dict(GRPO_DEFAULTS)
    if recipe.reward_weights:
        defaults["reward_weights"] = recipe.reward_weights
    config = trl_config(recipe, GRPOConfig, **defaults)
    if config.use_vllm and importlib.util.find_spec("vllm") is None:
        warnings.warn(
            "the recipe asks for vLLM generation but vLLM is not installed: generating with "
            "transformers instead (pip install 'axr[vllm]' on the GPU machines)",
            stacklevel=1,
        )
        config.use_vllm = False
    dataset = load_dataset_checked(recipe)
    checkpoint = _checkpoint(recipe) if resume else None
    model, processor = load_model(recipe, checkpoint)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=get_rewards(recipe.rewards),
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=callbacks,
    )
    return _finish(recipe, trainer, processor, _train(trainer, checkpoint))


def _train(trainer, checkpoint: str | None):
    """Train, or resume: the weights came from the checkpoint with the model (`load_model`, which maps saved
    names to the model's own); the Trainer restores the step, optimizer, scheduler and RNG from it. Its own
    reload of the weights matches names literally, and transformers 5 saves Qwen2.5-VL under other names
    (`model.layers.*` for `model.language_model.*`): it would load nothing and say only "missing keys", so
    it is left out."""
    if checkpoint and not trainer.is_deepspeed_enabled and not trainer.is_fsdp_enabled:
        trainer._load_from_checkpoint = lambda *args, **kwargs: None  # weights are loaded already
    return trainer.train(resume_from_checkpoint=checkpoint)


def _checkpoint(recipe: Recipe) -> str:
    """The latest checkpoint in the output folder; resuming without one is an error, not a fresh start."""
    checkpoints = sorted(Path(recipe.output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not checkpoints:
        raise SchemaError(
            f"--resume: no checkpoint-* in {recipe.output_dir} (the recipe saves them with trainer.save_strategy "
            "and save_steps); run without --resume to start from the beginning"
        )
    return str(checkpoints[-1])


def _finish(recipe: Recipe, trainer, processor, result) -> dict[str, Any]:
    out = Path(recipe.output_dir)
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))
    summary = {
        "kind": recipe.kind,
        "global_step": result.global_step,
        "training_loss": result.training_loss,
        "log_history": trainer.state.log_history,
        "lora": recipe.lora is not None,
    }
    if recipe.merge_on_finish and recipe.lora is not None:
        summary["merged"] = str(export_merged(out, out / "merged", recipe.model))
    (out / "axr_training.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def export_merged(adapter_dir: Path, out: Path, base_model: str | None = None) -> Path:
    """Fold a LoRA adapter into its base model and save model + processor: a plain folder that the `hf`
    backend and `vllm serve` load with no peft at all. A full fine-tune is copied as it is."""
    import torch

    from axr.reasoning.local_models import resolve_model

    adapter_dir = Path(adapter_dir)
    config_file = adapter_dir / "adapter_config.json"
    if config_file.is_file():
        from peft import PeftModel

        base = resolve_model(base_model or json.loads(config_file.read_text())["base_model_name_or_path"])
        loader, processor_class = model_classes(base)
        model = loader.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    else:
        loader, processor_class = model_classes(str(adapter_dir))
        model = loader.from_pretrained(str(adapter_dir), dtype=torch.float32)
    processor = processor_class.from_pretrained(str(adapter_dir))
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out


def curve_table(history: list[dict], kind: str) -> tuple[list[str], list[list[str]]]:
    """The loss (SFT) or the mean reward per function (GRPO) at every logged step: (columns, rows)."""
    logged = [h for h in history if "loss" in h and "train_runtime" not in h]
    keys = (
        ["loss"]
        if kind == "sft"
        else ["reward"] + sorted({k for h in logged for k in h if k.endswith("/mean") and k.startswith("rewards/")})
    )
    names = [k.removeprefix("rewards/").removesuffix("/mean").removesuffix("_reward") for k in keys]
    rows = [
        [str(h.get("step")), *(f"{h[k]:.4f}" if isinstance(h.get(k), float) else "-" for k in keys)] for h in logged
    ]
    return ["step", *names], rows
