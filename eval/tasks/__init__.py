"""Task files: small YAML documents; a task may `include:` another and override its keys. A loaded task is a
typed `TaskConfig` (eval/task_config.py), so a misspelt key fails here, naming the file and the field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from axr.eval.task_config import TaskConfig
from axr.reasoning.resources import package_dir, resolve
from axr.reasoning.schema import SchemaError, named_yaml, read_yaml_mapping

TASKS_DIR = package_dir("axr.eval.tasks")
MODES = ("direct", "mcq", "mcq_from_verdict", "captions")


class TaskError(SchemaError):
    """A task file is missing, malformed, includes itself, or has a field its mode does not know."""


def task_path(name_or_path: str) -> Path:
    return named_yaml(name_or_path, TASKS_DIR, "task", TaskError)


def load_task(
    name_or_path: str, overrides: Mapping[str, Any] | None = None, endpoint: Mapping[str, Any] | None = None
) -> TaskConfig:
    """The task, its `include:` chain merged, then `overrides` ({"pipeline.model": "x", ...}) applied, and
    `endpoint` ({backend, model, base_url}) set where the task names its model (a caption task's re-check)."""
    path = task_path(name_or_path)
    data = _merged(path)
    prefix = "pipeline.recheck" if (data.get("pipeline") or {}).get("mode") == "captions" else "pipeline"
    given = {**(overrides or {}), **{f"{prefix}.{k}": v for k, v in (endpoint or {}).items() if v is not None}}
    for key, value in given.items():
        set_dotted(data, key, value)
    return task_from_dict(data, str(path))


def task_from_dict(data: dict[str, Any], where: str = "task") -> TaskConfig:
    try:
        return TaskConfig.model_validate(data)
    except ValidationError as error:
        raise TaskError(f"{where}: {_describe(error)}") from None


def _merged(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise TaskError(f"{path}: includes itself")
    data = read_yaml_mapping(path, "task")
    parent = data.pop("include", None)
    if parent:
        data = deep_merge(_merged(task_path(str(path.parent / parent)), (*seen, path)), data)
    return data


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b" (made where missing); a key through a non-mapping is an error."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TaskError(f"--set {key}: {part} is not a mapping in this task")
    node[last] = value


def parse_assignment(text: str, flag: str = "--set") -> tuple[str, Any]:
    """'dotted.key=value' -> (key, value); the value is read as YAML (numbers, true/false, null, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise TaskError(f"{flag} {text!r}: expected key=value (a dotted key, e.g. pipeline.max_tokens=256)")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value  # a string YAML cannot read (a regex, say) is meant as it is


def _describe(error: ValidationError) -> str:
    """The first failing field as a dotted path, without pydantic's union tags (pipeline.captions.x -> pipeline.x)."""
    first = error.errors()[0]
    loc = [str(p) for p in first["loc"]]
    if len(loc) > 1 and loc[0] == "pipeline" and loc[1] in MODES:
        loc.pop(1)
    message = first["msg"]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        message = f"pipeline.mode must be one of {', '.join(MODES)}"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{'.'.join(loc) or '(top level)'}: {message}{more}"


def task_file_path(value: str | None) -> Path | None:
    """A path in a task file: a `data:` reference (shipped or fetched data), or a path on this machine
    (relative ones from the working directory, like every command-line path)."""
    return None if value is None else resolve(value)


def all_tasks() -> list[str]:
    """Shipped task names; files starting with `_` are bases that tasks include."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def task_overrides(assignments: list[str] | None, **flags) -> dict:
    """The flags that name a task field (None when not given) and every --set, as {dotted.key: value}; a
    `dataset.data_dir` folder is made absolute (a run may read it from another working folder), a `data:`
    reference is kept as it is."""
    overrides = {key: value for key, value in flags.items() if value is not None}
    folder = overrides.get("dataset.data_dir")
    if folder is not None and not str(folder).startswith("data:"):
        overrides["dataset.data_dir"] = str(Path(folder).resolve())
    overrides.update(parse_assignment(text) for text in assignments or [])
    return overrides
