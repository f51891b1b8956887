"""Time series as CSV: one file per series with columns timestamp,value,label (label 0 normal, 1 anomalous).

Each series is cut into windows of `window` points every `stride` points; a window is anomalous when any
point in it is. `train` is the windows that end within the first `train_fraction` of a series and hold no
anomalous point; `test` is the windows that start after that part. A VLM sees a window as a rendered plot.
"""

from __future__ import annotations

import csv
from pathlib import Path

from axr.eval.datasets.layout import LayoutError
from axr.reasoning.schema import Sample


def read_series(path: Path) -> tuple[list[float], list[float], list[int]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp", "value", "label"} - set(reader.fieldnames or ())
        if missing:
            raise LayoutError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need timestamp,value,label)")
        stamps, values, labels = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                stamps.append(float(row["timestamp"]))
                values.append(float(row["value"]))
                labels.append(int(row["label"]))
            except (TypeError, ValueError):
                raise LayoutError(f"{path}:{line}: timestamp and value must be numbers, label 0 or 1") from None
    return stamps, values, labels


def load(root: Path, split: str = "test", window: int = 64, stride: int = 32, train_fraction: float = 0.3):
    files = [root] if root.is_file() else sorted(root.glob("*.csv"))
    if not files:
        raise LayoutError(f"{root}: no .csv series (columns timestamp,value,label)")
    samples = []
    for path in files:
        stamps, values, labels = read_series(path)
        cut = int(len(values) * train_fraction)
        for start in range(0, max(len(values) - window, 0) + 1, stride):
            end = start + window
            in_train = end <= cut and not any(labels[start:end])
            if (split == "train" and in_train) or (split == "test" and start >= cut):
                samples.append(
                    Sample(
                        sample_id=f"{path.stem}/{start:08d}",
                        series=values[start:end],
                        timestamps=stamps[start:end],
                        gt_label=int(any(labels[start:end])),
                        meta={"dataset": "timeseries", "category": path.stem, "start": start},
                    )
                )
    return samples
