"""MMAD: multiple-choice questions about industrial images (mmad.json at the root, images beside it).

mmad.json maps an image path (relative to the root) to {"image_path", "mask_path", "similar_templates",
"random_templates", "conversation": [{"Question", "Answer", "Options": {"A": ..., ...}, "type"}]}. Question
types: Anomaly Detection, Defect Classification, Defect Localization, Defect Description, Defect Analysis,
Object Classification, Object Analysis. One Sample per question; its references are the image's
`similar_templates` (normal images of the same object).
"""

from __future__ import annotations

from pathlib import Path

from axr.eval.datasets.layout import LayoutError, read_json, require
from axr.reasoning.schema import Sample

LETTERS = "ABCDE"


def load(root: Path, split: str = "test", max_references: int = 8) -> list[Sample]:
    if split != "test":
        raise LayoutError("MMAD has only a test split")
    path = require(root / "mmad.json", "mmad.json")
    index = read_json(path)
    if not isinstance(index, dict):
        raise LayoutError(f"{path}: expected an object mapping image paths to their questions")
    samples = []
    for key, entry in index.items():
        conversation = entry.get("conversation") if isinstance(entry, dict) else None
        if not isinstance(conversation, list):
            raise LayoutError(f"{path}: {key}: no 'conversation' list of questions")
        image = root / entry.get("image_path", key)
        references = [str(root / t) for t in entry.get("similar_templates", [])[:max_references]]
        label = 0 if "/good/" in f"/{key}" else 1
        for number, question in enumerate(conversation):
            samples.append(_question_sample(path, key, number, question, image, references, label))
    return samples


def _question_sample(path, key, number, question, image, references, label) -> Sample:
    where = f"{path}: {key} question {number}"
    for field in ("Question", "Answer", "Options", "type"):
        if field not in question:
            raise LayoutError(f"{where}: missing {field!r}")
    options = question["Options"]
    if not isinstance(options, dict) or not set(options) <= set(LETTERS) or question["Answer"] not in options:
        raise LayoutError(f"{where}: Options must map letters A-E to text and include the Answer letter")
    return Sample(
        sample_id=f"{key}#{number}",
        image_path=str(image),
        references=references,
        gt_label=label,
        meta={
            "dataset": "mmad",
            "question": question["Question"],
            "options": options,
            "answer": question["Answer"],
            "question_type": question["type"],
            "image_key": key,
        },
    )
