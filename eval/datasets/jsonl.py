"""A generic JSONL file of Samples, one JSON object a line, with an optional "split" key (default test).

Relative media paths are resolved against the file's folder. `root` is the file or a folder holding
samples.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from axr.eval.datasets.layout import LayoutError, require
from axr.reasoning.schema import Sample, describe_validation_error

PATH_FIELDS = ("image_path", "video_path", "gt_mask")


def load(root: Path, split: str = "test") -> list[Sample]:
    path = root if root.is_file() else require(root / "samples.jsonl", "samples.jsonl")
    samples = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            row = json.loads(line)
            if row.pop("split", "test") != split:
                continue
            for field in PATH_FIELDS:
                if row.get(field):
                    row[field] = str(path.parent / row[field])
            row["references"] = [str(path.parent / r) for r in row.get("references", [])]
            samples.append(Sample(**row))
        except json.JSONDecodeError as error:
            raise LayoutError(f"{where}: not JSON ({error.msg})") from None
        except ValidationError as error:
            raise LayoutError(f"{where}: {describe_validation_error(error)}") from None
        except (AttributeError, TypeError):
            raise LayoutError(f"{where}: expected a JSON object") from None
    return samples
