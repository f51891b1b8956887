"""Synthetic anomalies on normal images, so a user with only good parts can train and evaluate.

Four kinds: `cut_paste` (a patch of the image moved, flipped and re-lit), `scratch` (a thin jagged line),
`stain` (a soft-edged tinted blob) and `noise_blob` (a region of strong grain). Each comes with its mask,
its normalised box and a templated what / why / how, and is reproducible: the random generator is seeded
per image from (seed, index), so one image's defect never depends on the others or on the order of work.

Why not the PyPI package `defect-synthesis` (0.1.0, Apache-2.0)? It draws from Python's global `random`
state (reproducible only by seeding the whole process), needs OpenCV, and has no cut-paste; these four
generators are short, use only numpy and Pillow, and are seeded per image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from axr.reasoning.media import list_images, load_image, pixel_box, region_name

KINDS = ("cut_paste", "scratch", "stain", "noise_blob")
WHY = {
    "cut_paste": "a region repeats another part of the surface out of place, which a normal part never shows",
    "scratch": "a thin line cuts across the surface; normal surfaces have no such marks",
    "stain": "a discoloured patch breaks the uniform colour of a normal surface",
    "noise_blob": "a patch of coarse grain differs from the texture of a normal surface",
}


@dataclass
class Synthetic:
    image: Image.Image
    mask: Image.Image  # L mode, 255 where the defect is
    defect_type: str
    box: list[float]
    rationale: dict[str, str]
    severity: str


def _region_box(rng: np.random.Generator, width: int, height: int, low: float, high: float) -> tuple[int, ...]:
    w = max(int(width * rng.uniform(low, high)), 4)
    h = max(int(height * rng.uniform(low, high)), 4)
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return x0, y0, x0 + w, y0 + h


def _cut_paste(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    width, height = image.size
    source = _region_box(rng, width, height, 0.1, 0.25)
    patch = image.crop(source).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    patch = patch.point(lambda v: min(255, int(v * rng.uniform(0.6, 1.4))))
    x0, y0 = int(rng.integers(0, width - patch.width + 1)), int(rng.integers(0, height - patch.height + 1))
    out = image.copy()
    out.paste(patch, (x0, y0))
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle([x0, y0, x0 + patch.width - 1, y0 + patch.height - 1], fill=255)
    return out, mask


def _scratch(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    width, height = image.size
    start = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
    angle, length = rng.uniform(0, np.pi), rng.uniform(0.3, 0.6) * min(width, height)
    points = [tuple(start)]
    for _ in range(4):  # a jagged line: four segments with a little wobble
        angle += rng.normal(0, 0.25)
        start = start + length / 4 * np.array([np.cos(angle), np.sin(angle)])
        points.append(tuple(np.clip(start, 0, [width - 1, height - 1])))
    line_width = int(rng.integers(1, 4))
    shade = int(rng.choice([20, 235]))
    out = image.copy()
    ImageDraw.Draw(out).line(points, fill=(shade, shade, shade), width=line_width)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).line(points, fill=255, width=line_width + 2)
    return out, mask


def _blob_mask(image: Image.Image, rng: np.random.Generator, blur: float) -> Image.Image:
    width, height = image.size
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse(_region_box(rng, width, height, 0.1, 0.3), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(blur)) if blur else mask


def _stain(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    soft = _blob_mask(image, rng, blur=3)
    tint = tuple(int(c) for c in rng.choice([(90, 60, 30), (40, 40, 40), (150, 120, 60)]))
    alpha = soft.point(lambda v: int(v * rng.uniform(0.4, 0.7)))
    out = Image.composite(Image.new("RGB", image.size, tint), image, alpha)
    return out, soft.point(lambda v: 255 if v > 64 else 0)


def _noise_blob(image: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    mask = _blob_mask(image, rng, blur=0)
    pixels = np.asarray(image, dtype=np.float32)
    noisy = np.clip(pixels + rng.normal(0, 60, pixels.shape), 0, 255).astype(np.uint8)
    return Image.composite(Image.fromarray(noisy), image, mask), mask


GENERATORS = {"cut_paste": _cut_paste, "scratch": _scratch, "stain": _stain, "noise_blob": _noise_blob}


def synthesize(image: Image.Image, kind: str, seed: int, subject: str = "surface") -> Synthetic:
    """One defect of `kind` on an RGB image, reproducible from `seed`."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown defect kind {kind!r}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    out, mask = GENERATORS[kind](image.convert("RGB"), rng)
    pixels = np.asarray(mask) > 0
    box = pixel_box(pixels)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    share = float(pixels.mean())
    severity = "low" if share < 0.02 else "medium" if share < 0.08 else "high"
    name = kind.replace("_", "-")
    rationale = {
        "what": f"a {name} defect at the {region_name(*centre)} of the {subject}",
        "why": WHY[kind],
        "how": f"it covers about {share:.0%} of the image around ({centre[0]:.2f}, {centre[1]:.2f})",
    }
    return Synthetic(out, mask, kind, box, rationale, severity)


def synthesize_set(
    normal_dir: Path,
    out: Path,
    per_image: int = 1,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    subject: str = "surface",
    train_share: float = 0.5,
) -> Path:
    """Normal images -> a folder in the generic JSONL layout (`samples.jsonl`, images/, masks/): every normal
    image, plus `per_image` defective copies of it (kinds in turn). The first `train_share` of the images (by
    name) and their copies are `split: train`, the rest `test`. Returns the JSONL path."""
    paths = list_images(normal_dir)
    if not paths:
        raise ValueError(f"{normal_dir}: no images")
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    cut = int(len(paths) * train_share)
    rows = []
    for index, path in enumerate(paths):
        split = "train" if index < cut else "test"
        image = load_image(path)
        normal_name = f"images/{index:05d}_normal.png"
        image.save(out / normal_name)
        rows.append(
            {
                "sample_id": f"{index:05d}_normal",
                "image_path": normal_name,
                "gt_label": 0,
                "split": split,
                "meta": {"category": subject, "source": str(path)},
            }
        )
        for copy in range(per_image):
            kind = kinds[(index * per_image + copy) % len(kinds)]
            synthetic = synthesize(image, kind, seed * 1_000_003 + index * 101 + copy, subject)
            stem = f"{index:05d}_{kind}_{copy}"
            synthetic.image.save(out / "images" / f"{stem}.png")
            synthetic.mask.save(out / "masks" / f"{stem}.png")
            rows.append(
                {
                    "sample_id": stem,
                    "image_path": f"images/{stem}.png",
                    "gt_label": 1,
                    "gt_type": kind,
                    "gt_mask": f"masks/{stem}.png",
                    "gt_box": synthetic.box,
                    "gt_rationale": synthetic.rationale,
                    "split": split,
                    "meta": {"category": subject, "severity": synthetic.severity, "source": str(path)},
                }
            )
    target = out / "samples.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target
