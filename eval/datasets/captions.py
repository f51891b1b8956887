"""AnomalyRuler-style caption sets: per-frame captions and labels of test videos.

Layout (`data:anomalyruler/<set>`, data card `data_cards/anomalyruler_captions.md`):
    test_frame_description/<video>.txt   one caption per line, one line per frame, in frame order
    test_frame/<video>.csv               image_path,label per frame (0 normal, 1 anomalous), same order
"""

from __future__ import annotations

import csv
from pathlib import Path

from axr.eval.datasets.layout import LayoutError
from axr.reasoning.caption_detector import CaptionVideo
from axr.reasoning.text_files import TextFileError, cut_caption, read_lines


def load_caption_set(data_dir: str | Path, encoding: str | None = None) -> tuple[list[CaptionVideo], dict[str, str]]:
    """(videos, problems by video name): a video whose files cannot be read (labels missing or unreadable, a
    caption/label count mismatch, no captions, an encoding other than UTF-8/UTF-16 or `encoding`) is left out
    and its problem returned, so one bad video costs only itself. Captions are read as
    `axr.reasoning.text_files` says: blank lines are frames with no caption, long captions are cut."""
    root = Path(data_dir)
    captions_dir, labels_dir = root / "test_frame_description", root / "test_frame"
    for folder in (captions_dir, labels_dir):
        if not folder.is_dir():
            raise LayoutError(f"{root}: missing folder {folder.name}/ (expected AnomalyRuler's caption layout)")
    caption_files = sorted(captions_dir.glob("*.txt"))
    if not caption_files:
        raise LayoutError(f"{captions_dir}: no <video>.txt caption files")
    videos, problems = [], {}
    for path in caption_files:
        try:
            videos.append(_load_video(path, labels_dir / f"{path.stem}.csv", encoding))
        except (LayoutError, TextFileError, OSError) as error:
            problems[path.stem] = f"{path}: {error}" if isinstance(error, OSError) else str(error)
    if not videos:
        raise LayoutError(f"{captions_dir}: no readable video (first problem: {next(iter(problems.values()))})")
    return videos, problems


def _load_video(caption_path: Path, label_path: Path, encoding: str | None) -> CaptionVideo:
    if not label_path.is_file():
        raise LayoutError(f"{label_path}: label file missing for {caption_path.name}")
    lines = read_lines(caption_path, encoding)
    if not lines:
        raise LayoutError(f"{caption_path}: empty video (no caption lines)")
    captions, cut = zip(*(cut_caption(line) for line in lines), strict=True)
    rows = list(csv.DictReader(read_lines(label_path, encoding)))
    if rows and "label" not in rows[0]:
        raise LayoutError(f"{label_path}: no 'label' column (expected image_path,label)")
    try:
        labels = [int(row["label"]) for row in rows]
    except ValueError as error:
        raise LayoutError(f"{label_path}: labels must be 0 or 1 ({error})") from None
    if len(labels) != len(captions):
        raise LayoutError(
            f"{caption_path.name}: {len(captions)} caption lines but {len(labels)} labels in {label_path.name}"
        )
    return CaptionVideo(caption_path.stem, list(captions), labels, cut={i for i, c in enumerate(cut) if c})


def split_videos(videos: list[CaptionVideo], every: int = 3) -> tuple[list[CaptionVideo], list[CaptionVideo]]:
    """(reference, held-out): every `every`-th video, in name order from the first, feeds induction and
    thresholds (its normal-labelled frames only); the others are evaluated."""
    reference = videos[::every]
    names = {v.video for v in reference}
    return reference, [v for v in videos if v.video not in names]


def task_videos(task) -> tuple[list[CaptionVideo], list[CaptionVideo], dict[str, str]]:
    """(reference, held-out, problems by video name) of a caption task's data folder, split as the task says."""
    from axr.eval.tasks import task_file_path
    from axr.reasoning.schema import SchemaError

    data_dir = task_file_path(task.dataset.data_dir)
    if data_dir is None:
        raise SchemaError("task: dataset.data_dir is required (or --data-dir)")
    videos, problems = load_caption_set(data_dir, task.dataset.encoding)
    reference, held_out = split_videos(videos, task.split.reference_every)
    return reference, held_out[:: task.split.evaluate_every], problems


def task_rulebook(task):
    """The rule book a caption task names (a file, not 'induce')."""
    from axr.eval.tasks import task_file_path
    from axr.reasoning.rulebook_import import load_rules

    rules = task.pipeline.rules
    if not rules or rules == "induce":
        raise ValueError(f"{task.task}: this needs a rule book file (pipeline.rules / --rules), not 'induce'")
    return load_rules(task_file_path(rules))
