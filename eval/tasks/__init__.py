"""Task files: small YAML documents; a task may `include:` another and override its keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reasoning.schema import SchemaError, read_yaml_mapping

TASKS_DIR = Path(__file__).parent
REPO_ROOT = TASKS_DIR.parent.parent


class TaskError(SchemaError):
    """A task file is missing, malformed, or includes itself."""


def task_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    candidate = TASKS_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in TASKS_DIR.glob("*.yaml")))
        raise TaskError(f"unknown task {name_or_path!r}; known tasks: {known}")
    return candidate


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


def repo_path(value: str | None) -> Path | None:
    """Paths in shipped task files are relative to the repository root."""
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()
