"""Task files: small YAML documents; a task may `include:` another and override its keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from axr.reasoning.resources import DataError, is_data_ref, package_dir, resolve
from axr.reasoning.schema import SchemaError, named_yaml, read_yaml_mapping

TASKS_DIR = package_dir("axr.eval.tasks")


class TaskError(SchemaError):
    """A task file is missing, malformed, or includes itself."""


PIPELINES = ("direct", "mcq", "mcq_from_verdict")  # how the sample runner predicts (caption tasks have their own)


def task_path(name_or_path: str) -> Path:
    return named_yaml(name_or_path, TASKS_DIR, "task", TaskError)


def load_task(name_or_path: str, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The task as a dict, its `include:` chain merged (later keys win, mappings merge deeply)."""
    path = task_path(name_or_path).resolve()
    if path in _seen:
        raise TaskError(f"{path}: includes itself")
    data = read_yaml_mapping(path, "task")
    parent = data.pop("include", None)
    if parent:
        base = load_task(str(path.parent / parent), (*_seen, path))
        data = deep_merge(base, data)
    return data


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def task_file_path(value: str | None) -> Path | None:
    """A path in a task file: a `data:` reference (shipped or fetched data), or a path on this machine
    (relative ones from the working directory, like every command-line path)."""
    return None if value is None else resolve(value)


SAMPLE_METRICS = {
    "auroc",
    "ap",
    "f1_max",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "balanced_accuracy",
    "type_accuracy",
    "box_iou",
    "mask_hit",
    "doubly_right",
    "rule_consistency",
    "unparsed_rate",
    "errors",
    "mmad_accuracy",
    "unanswered",
    "per_category_auroc",
}
CAPTION_METRICS = {
    "frame_auc_pooled",
    "frame_auc_per_video_mean",
    "frame_ap",
    "frame_f1_max",
    "frame_accuracy",
    "frame_precision",
    "frame_recall",
    "frame_f1",
    "frame_balanced_accuracy",
}


def all_tasks() -> list[str]:
    """Shipped task names; files starting with `_` are bases that tasks include."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def validate_task(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a loaded task, checked without a model. A dataset folder that is absent is only
    a warning: most datasets are not shipped and a user points --data-dir at them."""
    from axr.eval.datasets import adapter_names
    from axr.reasoning.backends import BACKENDS
    from axr.reasoning.deduction import POLICIES

    errors, warnings = [], []
    dataset, pipeline = config.get("dataset") or {}, config.get("pipeline") or {}
    if not isinstance(config.get("task"), str):
        errors.append("task: a name is required")
    captions = dataset.get("adapter") == "anomalyruler_captions"
    if not captions and dataset.get("adapter") not in adapter_names():
        errors.append(f"dataset.adapter {dataset.get('adapter')!r}: choose one of {', '.join(adapter_names())}")
    if captions:
        recheck = pipeline.get("recheck") or {}
        if recheck.get("policy") not in POLICIES:
            errors.append(f"pipeline.recheck.policy {recheck.get('policy')!r}: choose one of {', '.join(POLICIES)}")
        backend, known = recheck.get("backend"), CAPTION_METRICS
    else:
        if pipeline.get("mode", "direct") not in PIPELINES:
            errors.append(f"pipeline.mode {pipeline.get('mode')!r}: choose one of {', '.join(PIPELINES)}")
        count = (pipeline.get("references") or {}).get("count", 0)
        if not isinstance(count, int) or count < 0:
            errors.append(f"pipeline.references.count {count!r}: a whole number >= 0")
        backend, known = pipeline.get("backend"), SAMPLE_METRICS
    if backend not in BACKENDS:
        errors.append(f"pipeline backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    unknown = [m for m in config.get("metrics") or [] if m not in known]
    if unknown:
        errors.append(f"metrics: unknown {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    errors += _check_rules(pipeline.get("rules"))
    errors += _check_judge(config.get("judge"))
    try:
        data_dir = task_file_path(dataset.get("data_dir"))
    except DataError as error:
        warnings.append(f"dataset.data_dir {error}")
    else:
        if data_dir is not None and not data_dir.exists():
            warnings.append(f"dataset.data_dir {data_dir} does not exist here (pass --data-dir)")
    return errors, warnings


def _check_rules(rules: str | None) -> list[str]:
    if not rules or rules == "induce":
        return []
    from axr.reasoning.rulebook_import import load_rules

    try:
        load_rules(task_file_path(rules))
    except DataError as error:  # a set not fetched yet: `axr data fetch` fixes it, the task itself is fine
        return [] if is_data_ref(rules) else [f"pipeline.rules: {error}"]
    except (SchemaError, OSError) as error:
        return [f"pipeline.rules: {error}"]
    return []


def _check_judge(judge: Any) -> list[str]:
    if judge is None:
        return []
    judges = judge.get("judges") if isinstance(judge, dict) else None
    if not isinstance(judges, list) or not judges:
        return ["judge: expected {judges: [{backend, model, base_url}, ...]}"]
    return [
        f"judge.judges[{i}]: needs backend and model"
        for i, j in enumerate(judges)
        if not isinstance(j, dict) or not {"backend", "model"} <= set(j)
    ]
