"""Training recipes: one YAML file says the model, the data, LoRA or full, what is frozen, the rewards, and
the TRL settings. Everything is checked before a model is loaded: an unknown key, an unknown reward, a
dataset without a column a reward needs, or a row without its image is an error naming the recipe.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from axr.reasoning.resources import package_dir
from axr.reasoning.schema import SchemaError, describe_validation_error, named_yaml, read_yaml_mapping

RECIPES_DIR = package_dir("axr.training") / "recipes"
ACCELERATE_DIR = package_dir("axr.training") / "accelerate"  # launcher configs: DDP, ZeRO-2, ZeRO-3


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["sft", "grpo"]
    model: str = Field(description="a local folder, a hub id, or an offline alias (tiny-qwen2.5-vl)")
    dataset: str = Field(description="a folder written by `axr train data`")
    output_dir: str
    lora: LoraSettings | None = Field(default_factory=LoraSettings, description="null: full fine-tuning")
    freeze_vision: bool = True
    trust_remote_code: bool = False
    rewards: list[str] = Field(default_factory=list, description="GRPO: names from axr.training.rewards.REWARDS")
    reward_weights: list[float] | None = None
    trainer: dict[str, Any] = Field(default_factory=dict, description="TRL SFTConfig / GRPOConfig fields")
    merge_on_finish: bool = False
    _path: str = PrivateAttr("<recipe>")

    @property
    def path(self) -> str:
        return self._path


def load_recipe(name_or_path: str, **overrides: Any) -> Recipe:
    path = named_yaml(name_or_path, RECIPES_DIR, "recipe")
    data = read_yaml_mapping(path, "recipe")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        recipe = Recipe(**data)
    except ValidationError as error:
        raise SchemaError(f"{path}: {describe_validation_error(error)}") from None
    from axr.training.rewards import REWARDS

    if recipe.kind == "grpo" and not recipe.rewards:
        raise SchemaError(f"{path}: a GRPO recipe needs rewards (known: {', '.join(REWARDS)})")
    if recipe.reward_weights is not None and len(recipe.reward_weights) != len(recipe.rewards):
        raise SchemaError(
            f"{path}: reward_weights has {len(recipe.reward_weights)} values for {len(recipe.rewards)} rewards"
        )
    unknown = [r for r in recipe.rewards if r not in REWARDS]
    if unknown:
        raise SchemaError(f"{path}: unknown reward(s) {', '.join(unknown)}; known: {', '.join(REWARDS)}")
    recipe._path = str(path)
    return recipe


def trl_config(recipe: Recipe, config_cls, **defaults: Any):
    """The TRL config of the recipe: its `trainer:` mapping over AXR's defaults; unknown keys are an error."""
    import torch

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    settings = {
        "bf16": bf16,
        "use_cpu": not torch.cuda.is_available(),
        **defaults,
        **recipe.trainer,
        "output_dir": recipe.output_dir,
    }
    try:
        return config_cls(**settings)
    except TypeError as error:
        raise SchemaError(f"{recipe.path}: trainer: {error}") from None
    except ValueError as error:
        raise SchemaError(f"{recipe.path}: trainer: {str(error).splitlines()[0]}") from None
