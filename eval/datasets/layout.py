"""What every dataset adapter shares: the error for a folder not in its layout, and careful readers."""

from __future__ import annotations

import json
from pathlib import Path


class LayoutError(ValueError):
    """The folder is not in the expected layout; the message says what is missing or inconsistent."""


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{path}: missing {what}")
    return path


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise LayoutError(f"{path}: not valid JSON ({error})") from None
