"""A generic JSONL file of Samples, one JSON object a line, with an optional "split" key (default test).

Relative media paths are resolved against the file's folder. `root` is the file or a folder holding
samples.jsonl. A line that is not a valid Sample does not refuse the whole file: it becomes an unreadable
sample of the test split (id `samples.jsonl:LINE`), which the runner records as an error naming the line,
while every good line is run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from axr.eval.datasets.layout import require
from axr.reasoning.schema import Sample, describe_validation_error

PATH_FIELDS = ("image_path", "video_path", "gt_mask")


def load(root: Path, split: str = "test") -> list[Sample]:
    path = root if root.is_file() else require(root / "samples.jsonl", "samples.jsonl")
    samples = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        problem = None
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
            problem = f"not JSON ({error.msg})"
        except ValidationError as error:
            problem = describe_validation_error(error)
        except (AttributeError, TypeError):
            problem = "expected a JSON object"
        if problem and split == "test":
            samples.append(unreadable(f"{path.name}:{line_number}", f"{where}: {problem}"))
    return samples


def unreadable(sample_id: str, error: str) -> Sample:
    """A stand-in for a line that could not be read: its loading fails with `error`, so it is recorded."""
    return Sample(sample_id=sample_id, caption="(unreadable)", meta={"load_error": error})
