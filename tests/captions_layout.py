"""Writes small caption sets in AnomalyRuler's on-disk layout, for tests."""

from pathlib import Path

NORMAL = [
    "Two people are walking on the pathway. Other than people, there are trees and a building.",
    "A man is walking with a backpack. Other than people, there are trees and a building.",
    "Three people are walking towards the building. There are trees along the pathway.",
]
ANOMALOUS = [
    "A man is riding a bicycle through the crowd. Other than people, there are trees and a building.",
    "A person is riding a skateboard on the pathway. There are trees and a building.",
]


def write_caption_set(root: Path, videos: dict[str, list[tuple[str, int]]]) -> Path:
    """videos: name -> [(caption, label), ...] in frame order."""
    (root / "test_frame_description").mkdir(parents=True, exist_ok=True)
    (root / "test_frame").mkdir(parents=True, exist_ok=True)
    for name, frames in videos.items():
        (root / "test_frame_description" / f"{name}.txt").write_text("\n".join(c for c, _ in frames) + "\n")
        rows = ["image_path,label"] + [f"{name}/{i:03d}.jpg,{y}" for i, (_, y) in enumerate(frames)]
        (root / "test_frame" / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def synthetic_videos(n_videos: int = 6, length: int = 40) -> dict[str, list[tuple[str, int]]]:
    """Normal frames, with an anomalous event in the middle of every video but the reference ones."""
    videos = {}
    for v in range(n_videos):
        frames = []
        for i in range(length):
            anomalous = v % 3 != 0 and length // 3 <= i < 2 * length // 3
            pool = ANOMALOUS if anomalous else NORMAL
            frames.append((pool[(i + v) % len(pool)], int(anomalous)))
        videos[f"test_{v:02d}"] = frames
    return videos
