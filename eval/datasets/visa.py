"""VisA in its own split-file layout: split_csv/1cls.csv with columns object,split,label,image,mask.

`label` is `normal` or `anomaly`; `image` and `mask` are paths relative to the root (mask empty when
normal). VisA names no defect types in this file, so gt_type stays unset.
"""

from __future__ import annotations

import csv
from pathlib import Path

from axr.eval.datasets.folders import mask_box
from axr.eval.datasets.layout import LayoutError, require
from axr.reasoning.schema import Sample

COLUMNS = {"object", "split", "label", "image", "mask"}


def load(root: Path, split: str = "test", split_file: str = "split_csv/1cls.csv") -> list[Sample]:
    path = require(root / split_file, "VisA split file (split_csv/1cls.csv)")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = COLUMNS - set(rows[0] if rows else ())
    if missing:
        raise LayoutError(f"{path}: missing column(s) {', '.join(sorted(missing))} (expected {sorted(COLUMNS)})")
    samples = []
    for line, row in enumerate(rows, start=2):
        if row["split"] != split:
            continue
        if row["label"] not in ("normal", "anomaly"):
            raise LayoutError(f"{path}:{line}: label must be normal or anomaly, got {row['label']!r}")
        image = require(root / row["image"], f"image listed at {path.name}:{line}")
        mask = root / row["mask"] if row["mask"] else None
        if mask is not None:
            require(mask, f"mask listed at {path.name}:{line}")
        samples.append(
            Sample(
                sample_id=f"{row['object']}/{Path(row['image']).stem}-{line}",
                image_path=str(image),
                gt_label=int(row["label"] == "anomaly"),
                gt_mask=str(mask) if mask else None,
                gt_box=mask_box([mask]) if mask else None,
                meta={"category": row["object"], "dataset": "visa"},
            )
        )
    return samples
