"""UCF-Crime for users: `axr data fetch ucf-crime` builds the caption set from its three public files (served
here from a loopback mirror in their upstream formats), the ucf-crime task runs on it with the shipped
generic surveillance rule book."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from axr.reasoning.data import ucf_crime
from axr.reasoning.rulebook_import import load_rules
from tests.conftest import SHARED_DATA, run_axr

NORMAL = "Normal scenes. A person is walking on a sidewalk near a gate."
FIGHT = "Anomalous scenes. Two men are fighting and punching each other in a parking lot."


def write_mirror(root: Path, broken_annotation: bool = False) -> Path:
    """The three source files at their upstream paths: six videos of 100 frames (4 windows; the 5th caption
    lies past the last frame and is dropped); videos 1, 2, 4 and 5 have a fight in frames 30-74."""
    captions, annotations, counts = {}, [], []
    for v in range(6):
        name = f"Fighting{v:03d}_x264" if v % 3 else f"Normal_Videos_{v:03d}_x264"
        fight = v % 3 != 0
        captions[name] = [NORMAL, FIGHT if fight else NORMAL, FIGHT if fight else NORMAL, NORMAL, NORMAL]
        annotations.append(f"{name}  {'Fighting' if fight else 'Normal'}  {'30  74' if fight else '-1  -1'}  -1  -1  ")
        counts.append(f"{name} 0 100 {int(fight)}")
    if broken_annotation:
        annotations[2] = "Fighting002_x264  Fighting  thirty"
    for path, text in [
        (ucf_crime.CAPTIONS, json.dumps(captions, indent=2)),
        (ucf_crime.ANNOTATIONS, "\n".join(annotations) + "\n"),
        (ucf_crime.FRAME_COUNTS, "\n".join(counts)),
    ]:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.fixture()
def mirror(tmp_path):
    """A raw-file mirror on 127.0.0.1: /good/<source paths> and /broken/<source paths>."""
    write_mirror(tmp_path / "mirror" / "good")
    write_mirror(tmp_path / "mirror" / "broken", broken_annotation=True)
    handler = functools.partial(QuietHandler, directory=str(tmp_path / "mirror"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_window_labels_by_interval_majority():
    # windows of 30 frames; the last one has 10 frames (frames 90-99)
    assert ucf_crime.window_labels(4, 100, [(45, 59)]) == [0, 1, 0, 0]  # 15 of 30 frames: half is enough
    assert ucf_crime.window_labels(4, 100, [(46, 59)]) == [0, 0, 0, 0]  # 14 of 30: not
    assert ucf_crime.window_labels(4, 100, [(95, 120)]) == [0, 0, 0, 1]  # 5 of the last window's 10
    assert ucf_crime.window_labels(2, 60, []) == [0, 0]
    assert ucf_crime.strip_verdict("Anomalous scenes. A man runs.") == "A man runs."


def test_fetch_builds_the_set_and_the_task_runs_with_the_generic_book(tmp_path, mirror):
    env = {"AXR_DATA": str(tmp_path / "data")}
    run_axr("data", "fetch", "ucf-crime", "--url", f"{mirror}/good", env=env)
    root = tmp_path / "data" / "ucf-crime"
    lines = (root / "test_frame_description" / "Fighting001_x264.txt").read_text().splitlines()
    assert lines == [NORMAL[15:], FIGHT[18:], FIGHT[18:], NORMAL[15:]]  # prefix stripped, 5th caption dropped
    labels = (root / "test_frame" / "Fighting001_x264.csv").read_text().splitlines()
    assert labels == ["image_path,label", *(f"Fighting001_x264/{i:05d},{y}" for i, y in enumerate([0, 1, 1, 0]))]
    source = json.loads((root / "SOURCE.json").read_text())
    assert source["videos"] == 6 and len(source["files"]) == 3
    assert all(len(f["sha256"]) == 64 for f in source["files"].values())
    result = run_axr("eval", "run", "ucf-crime", "--output", str(tmp_path / "run"), env=env)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"]["evaluated_videos"] == 4 and metrics["frame_auc_pooled"] == 1.0
    assert metrics["rules"] == "surveillance" and metrics["keyword_weights"]["fight"] == 1.0
    assert "published (LAVAD" in " ".join(result.stderr.split())


def test_a_malformed_source_installs_nothing_and_names_the_line(tmp_path, mirror):
    result = run_axr(
        "data", "fetch", "ucf-crime", "--url", f"{mirror}/broken", check=False, env={"AXR_DATA": str(tmp_path)}
    )
    [line] = result.stderr.strip().splitlines()
    assert result.returncode == 2 and f"{ucf_crime.ANNOTATIONS}:3: not the expected layout" in line
    assert not (tmp_path / "ucf-crime").exists()
    missing = run_axr(
        "data", "fetch", "ucf-crime", "--url", f"{mirror}/absent", check=False, env={"AXR_DATA": str(tmp_path)}
    )
    assert missing.returncode == 2 and "HTTP 404" in missing.stderr and "--url ROOT" in missing.stderr


def test_the_generic_rule_book_loads_by_name_and_states_keywords():
    book = load_rules("surveillance")
    assert book.name == "surveillance" and len(book.rules("anomaly")) >= 20
    assert all(rule.keywords for rule in book.rules("anomaly"))
    with pytest.raises(ValueError, match="unknown rule book 'nope'; known: surveillance"):
        load_rules("nope")


@pytest.mark.skipif(not (SHARED_DATA / "more-captions" / "ucf-corevad").is_dir(), reason="../shared/data is absent")
def test_the_built_set_matches_the_shared_copy_made_from_the_same_files():
    """The shared copy was built independently from the pinned upstream files; a sample of its videos must be
    what the builder writes from captions and labels alone (checked here without the network: the shared
    captions carry the prefix-stripped text, so the labels are the part to compare)."""
    shared = SHARED_DATA / "more-captions" / "ucf-corevad"
    rows = (shared / "test_frame" / "Abuse028_x264.csv").read_text().splitlines()[1:]
    labels = [int(r.rsplit(",", 1)[1]) for r in rows]
    assert labels == ucf_crime.window_labels(48, 1411, [(165, 240)])
