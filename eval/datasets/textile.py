"""The simulated textile images of the `conformal-clip-data` package (data card: textile_conformal_clip.md).

simulated/{nominal,local,global}/*.jpg. `train` is the first `normal_train` nominal images (by name);
`test` is the other nominal images plus every defective one (gt_type local or global).
"""

from __future__ import annotations

from pathlib import Path

from axr.eval.datasets.layout import LayoutError, require
from axr.reasoning.media import list_images
from axr.reasoning.schema import Sample


def default_root() -> Path:
    try:
        import conformal_clip_data
    except ImportError:
        raise LayoutError(
            "the textile dataset needs the conformal-clip-data package (pip install conformal-clip-data) or a data_dir"
        ) from None
    return Path(conformal_clip_data.textile_simulated_root())


def load(root: Path, split: str = "test", normal_train: int = 100) -> list[Sample]:
    if split == "validation":
        raise LayoutError("the textile set has no validation split; use train or test")
    nominal = list_images(require(root / "nominal", "nominal/ folder"))
    if split == "train":
        return [_sample(p, None) for p in nominal[:normal_train]]
    samples = [_sample(p, None) for p in nominal[normal_train:]]
    for kind in ("local", "global"):
        samples += [_sample(p, kind) for p in list_images(require(root / kind, f"{kind}/ folder"))]
    return samples


def _sample(path: Path, defect: str | None) -> Sample:
    return Sample(
        sample_id=f"{defect or 'nominal'}/{path.stem}",
        image_path=str(path),
        gt_label=int(bool(defect)),
        gt_type=defect,
        meta={"category": "textile", "dataset": "textile"},
    )
