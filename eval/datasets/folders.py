"""MVTec AD and MVTec LOCO: category folders of images, with per-defect pixel masks.

MVTec AD:   <cat>/train/good/*.png, <cat>/test/<type>/*.png, <cat>/ground_truth/<type>/<id>_mask.png
MVTec LOCO: <cat>/train/good, <cat>/validation/good, <cat>/test/{good,logical_anomalies,structural_anomalies},
            <cat>/ground_truth/<type>/<id>/000.png (one or more masks per image)
`root` is either the dataset folder (one sub-folder per category) or a single category folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from axr.eval.datasets.layout import LayoutError, require
from axr.reasoning.media import list_images, pixel_box
from axr.reasoning.schema import Sample


def categories(root: Path) -> list[Path]:
    if (root / "train").is_dir() or (root / "test").is_dir():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / "test").is_dir())
    if not found:
        raise LayoutError(
            f"{root}: no category folders with a test/ folder (expected <category>/train/good, <category>/test/<type>)"
        )
    return found


def mask_box(paths: list[Path]) -> list[float] | None:
    """The normalised box around every set pixel of the masks, or None when they are empty."""
    union = None
    for path in paths:
        mask = np.asarray(Image.open(path).convert("L")) > 0
        union = mask if union is None else union | mask
    if union is None or not union.any():
        return None
    return pixel_box(union)


def _normal(category: Path, split: str, dataset: str) -> list[Sample]:
    folder = require(category / split / "good", f"{split}/good/ folder of normal images")
    return [
        Sample(
            sample_id=f"{category.name}/{split}/good/{p.stem}",
            image_path=str(p),
            gt_label=0,
            meta={"category": category.name, "dataset": dataset},
        )
        for p in list_images(folder)
    ]


def _test(category: Path, dataset: str, masks_of) -> list[Sample]:
    test = require(category / "test", "test/ folder")
    samples = []
    for type_dir in sorted(p for p in test.iterdir() if p.is_dir()):
        defect = type_dir.name != "good"
        for image in list_images(type_dir):
            masks = masks_of(category, type_dir.name, image) if defect else []
            samples.append(
                Sample(
                    sample_id=f"{category.name}/test/{type_dir.name}/{image.stem}",
                    image_path=str(image),
                    gt_label=int(defect),
                    gt_type=type_dir.name if defect else None,
                    gt_mask=str(masks[0]) if masks else None,
                    gt_box=mask_box(masks) if masks else None,
                    meta={"category": category.name, "dataset": dataset, "masks": [str(m) for m in masks]},
                )
            )
    if not samples:
        raise LayoutError(f"{test}: no images under test/<type>/")
    return samples


def _mvtec_ad_masks(category: Path, defect: str, image: Path) -> list[Path]:
    mask = category / "ground_truth" / defect / f"{image.stem}_mask.png"
    if not mask.is_file():
        raise LayoutError(f"{mask}: missing ground-truth mask for {image}")
    return [mask]


def _loco_masks(category: Path, defect: str, image: Path) -> list[Path]:
    folder = category / "ground_truth" / defect / image.stem
    masks = sorted(folder.glob("*.png"))
    if not masks:
        raise LayoutError(f"{folder}: missing ground-truth mask folder for {image}")
    return masks


def load_mvtec_ad(root: Path, split: str = "test") -> list[Sample]:
    if split == "validation":
        raise LayoutError("MVTec AD has no validation split; use train or test")
    return [
        s
        for cat in categories(root)
        for s in (_normal(cat, "train", "mvtec_ad") if split == "train" else _test(cat, "mvtec_ad", _mvtec_ad_masks))
    ]


def load_mvtec_loco(root: Path, split: str = "test") -> list[Sample]:
    samples = []
    for cat in categories(root):
        samples += _test(cat, "mvtec_loco", _loco_masks) if split == "test" else _normal(cat, split, "mvtec_loco")
    return samples
