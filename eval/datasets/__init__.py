"""Dataset adapters: each turns a dataset's own on-disk layout into AXR Samples (see data_cards/).

Every adapter is `load(root, split, **options) -> list[Sample]` and raises LayoutError naming what is
missing when the folder is not in its layout. Splits: `train` holds normal data that may feed rule
induction, references and training; `test` is held out for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from axr.eval.datasets.layout import LayoutError
from axr.reasoning.schema import Sample


def _adapters() -> dict[str, Callable[..., list[Sample]]]:
    from axr.eval.datasets import cuva, folders, jsonl, mmad, textile, timeseries, visa

    return {
        "mvtec_ad": folders.load_mvtec_ad,
        "mvtec_loco": folders.load_mvtec_loco,
        "visa": visa.load,
        "mmad": mmad.load,
        "cuva": cuva.load,
        "textile": textile.load,
        "timeseries_csv": timeseries.load,
        "jsonl": jsonl.load,
    }


def adapter_names() -> list[str]:
    return sorted(_adapters())


def load_samples(adapter: str, root: str | Path, split: str = "test", **options) -> list[Sample]:
    adapters = _adapters()
    if adapter not in adapters:
        raise LayoutError(f"unknown dataset adapter {adapter!r}; known: {', '.join(sorted(adapters))}")
    if root is None:
        raise LayoutError(f"dataset {adapter}: no data_dir given (set dataset.data_dir or pass --data-dir)")
    root = Path(root)
    if not root.exists():
        raise LayoutError(f"{root}: dataset folder does not exist")
    if split not in ("train", "test", "validation"):
        raise LayoutError(f"unknown split {split!r}; use train, validation or test")
    return adapters[adapter](root, split, **options)
