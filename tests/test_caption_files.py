"""Caption files as users bring them, through every reader: `axr detect`, `axr eval run` on a caption folder,
`axr train data` and rule-book import. Encodings (UTF-8, with a BOM, UTF-16, Latin-1), bad JSONL rows, blank
and very long captions, NUL bytes and CRLF line ends: each read, or one line naming the file and line."""

from __future__ import annotations

import json

import pytest
import yaml

from axr.reasoning.text_files import MAX_CAPTION_CHARS, TextFileError, read_lines
from tests.captions_layout import ANOMALOUS, NORMAL, synthetic_videos, write_caption_set
from tests.conftest import run_axr
from tests.test_caption_benchmark import BOOK

CAPTIONS = [NORMAL[0], ANOMALOUS[0], NORMAL[1]]
TEXT = "\n".join(CAPTIONS) + "\n"


def battery(folder) -> dict[str, bytes]:
    """{file name: bytes}: the same three captions as each tool writes them, and the files to refuse."""
    return {
        "utf8.txt": TEXT.encode(),
        "bom.txt": TEXT.encode("utf-8-sig"),
        "utf16.txt": TEXT.encode("utf-16"),  # with its byte-order mark, as Windows tools write
        "crlf.txt": TEXT.replace("\n", "\r\n").encode(),
        "nul.txt": TEXT.replace("A man", "A\0 man").encode(),
        "latin1.txt": (TEXT + "A man sits in the caf\xe9.\n").encode("latin-1"),
        "blank.txt": b"\n\n\n",
        "long.txt": ("A person walks. " + "x" * 1_000_000 + "\n").encode(),
    }


@pytest.fixture()
def files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for name, data in battery(folder).items():
        (folder / name).write_bytes(data)
    (folder / "normal.txt").write_text("\n".join(NORMAL * 20) + "\n")
    (folder / "rules.yaml").write_text(yaml.safe_dump(BOOK))
    return folder


def test_each_encoding_a_users_tool_writes_reads_as_the_same_lines(files):
    for name in ("utf8.txt", "bom.txt", "utf16.txt", "crlf.txt", "nul.txt"):
        assert read_lines(files / name) == CAPTIONS, name
    with pytest.raises(TextFileError, match=r"latin1.txt:4: not UTF-8 \(byte 0xe9 at column 22\).*--encoding latin-1"):
        read_lines(files / "latin1.txt")
    assert read_lines(files / "latin1.txt", "latin-1")[-1] == "A man sits in the caf\xe9."
    assert read_lines(files / "utf16.txt", "latin-1") == CAPTIONS  # a byte-order mark outranks --encoding
    assert read_lines(files / "blank.txt") == ["", "", ""]
    (files / "separators.txt").write_text("a\x0cb\u2028c\nd\n")  # inside a caption, not line ends
    assert read_lines(files / "separators.txt") == ["a\x0cb\u2028c", "d"]


def _detect(files, tmp_path, *inputs, extra=()):
    out = tmp_path / "verdicts.jsonl"
    args = (
        "detect",
        *map(str, inputs),
        "--rules",
        str(files / "rules.yaml"),
        "--reference",
        str(files / "normal.txt"),
    )
    result = run_axr(*args, "--out", str(out), *extra, check=False)
    records = [json.loads(line) for line in out.read_text().splitlines()] if result.returncode == 0 else []
    return result, records


def test_detect_reads_every_encoding_alike_and_refuses_latin1_in_one_line(files, tmp_path):
    expected = None
    for name in ("utf8.txt", "bom.txt", "utf16.txt", "crlf.txt", "nul.txt"):
        result, records = _detect(files, tmp_path, files / name)
        labels = [r["verdict"] for r in records]
        assert result.returncode == 0 and len(labels) == 3, result.stderr
        expected = expected or labels
        assert labels == expected, name
    result, _ = _detect(files, tmp_path, files / "latin1.txt")
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and "latin1.txt:4: not UTF-8" in line and "--encoding latin-1" in line
    result, records = _detect(files, tmp_path, files / "latin1.txt", extra=("--encoding", "latin-1"))
    assert result.returncode == 0 and len(records) == 4


def test_blank_captions_are_no_caption_and_long_ones_are_cut_and_counted(files, tmp_path):
    result, records = _detect(files, tmp_path, files / "blank.txt")
    assert result.returncode == 0 and len(records) == 3
    assert all(r["verdict"] == "normal" and r["meta"]["no_caption"] for r in records)
    assert "3 frames with no caption" in result.stderr
    result, [record] = _detect(files, tmp_path, files / "long.txt")
    assert record["meta"]["caption_cut"] and f"1 captions longer than {MAX_CAPTION_CHARS} characters cut" in (
        result.stderr
    )


def test_bad_jsonl_rows_are_recorded_with_their_line_and_a_lone_bad_file_is_one_line(files, tmp_path):
    rows = tmp_path / "captions.jsonl"
    rows.write_text(
        json.dumps({"sample_id": "cam/000000", "frame_index": 0, "caption": NORMAL[0]})
        + "\n{not json\n"
        + json.dumps({"sample_id": "cam/000002", "frame_index": 2})
        + "\n"
        + json.dumps({"caption": ANOMALOUS[0]})  # no sample_id: named by its file and line
        + "\n"
    )
    result, records = _detect(files, tmp_path, rows)
    assert result.returncode == 0, result.stderr
    errors = {r["sample_id"]: r["error"] for r in records if "error" in r}
    assert set(errors) == {f"{rows}:2", f"{rows}:3"}
    assert "not JSON" in errors[f"{rows}:2"] and "no 'caption' field" in errors[f"{rows}:3"]
    assert {r["sample_id"] for r in records if "verdict" in r} == {"cam/000000", "captions:4"}
    lone = tmp_path / "bad.jsonl"
    lone.write_text("{not json\n[1, 2]\n")
    result, _ = _detect(files, tmp_path, lone)
    said = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(said) == 1 and f"{lone}:1: not JSON" in said[0] and "1 more" in said[0]


def test_eval_run_and_train_data_read_a_folder_of_mixed_encodings(files, tmp_path):
    data_dir = write_caption_set(tmp_path / "set", synthetic_videos(6, 12))
    captions = data_dir / "test_frame_description"
    for video, encode in (("test_01", "utf-16"), ("test_02", "utf-8-sig")):
        path = captions / f"{video}.txt"
        path.write_bytes(path.read_text().replace("\n", "\r\n").encode(encode))
    latin = captions / "test_04.txt"
    latin.write_bytes(latin.read_text().replace("pathway", "caf\xe9 terrace").encode("latin-1"))
    run = tmp_path / "run"
    args = ("eval", "run", "captions", "--data-dir", str(data_dir), "--rules", str(files / "rules.yaml"))
    run_axr(*args, "--output", str(run))
    records = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    [bad] = [r for r in records if r["status"] == "error"]
    assert bad["sample_id"] == "test_04" and "test_04.txt:2: not UTF-8 (byte 0xe9" in bad["error"]
    assert {r["video"] for r in records if r["status"] == "ok"} == {"test_01", "test_02", "test_05"}
    run_axr(*args, "--output", str(run), "--encoding", "latin-1", "--retry-errors")
    records = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert {r["video"] for r in records if r["status"] == "ok"} == {"test_01", "test_02", "test_04", "test_05"}
    # `axr train data` reads the reference videos (test_00, test_03): one in UTF-16 with its own words
    from axr.eval.tasks import load_task

    reference = captions / "test_00.txt"
    lines = reference.read_text().splitlines()
    reference.write_bytes("".join(f"{c} Seen from the UTF-16 file.\r\n" for c in lines).encode("utf-16"))
    task = tmp_path / "task.yaml"
    config = load_task("captions", {"pipeline.rules": str(files / "rules.yaml"), "dataset.data_dir": str(data_dir)})
    task.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    out = tmp_path / "rows"
    run_axr("train", "data", str(task), "--kind", "scorer", "--encoding", "latin-1", "--out", str(out))
    from datasets import load_from_disk

    prompts = [json.dumps(row) for part in ("sft", "check") for row in load_from_disk(str(out / part))]
    assert any("Seen from the UTF-16 file." in p for p in prompts)


def test_rule_books_in_utf16_read_and_in_latin1_are_one_line(files, tmp_path):
    from axr.reasoning.rulebook_import import load_rules
    from axr.reasoning.schema import SchemaError

    published = "**Rules for Anomaly Human Activities:**\n1. Riding a bicycle\n2. Fighting\n"
    (tmp_path / "rules_utf16.txt").write_bytes(published.replace("\n", "\r\n").encode("utf-16"))
    (tmp_path / "rules_utf8.txt").write_text(published)
    assert [r.text for r in load_rules(tmp_path / "rules_utf16.txt").rules()] == ["Riding a bicycle", "Fighting"]
    (tmp_path / "book.yaml").write_bytes(yaml.safe_dump(BOOK).encode("utf-16"))
    assert load_rules(tmp_path / "book.yaml").name == "walkway"
    (tmp_path / "rules_latin1.txt").write_bytes((published + "3. Caf\xe9 fire\n").encode("latin-1"))
    with pytest.raises(SchemaError, match=r"rules_latin1.txt:4: not UTF-8 .*save the file as UTF-8$"):
        load_rules(tmp_path / "rules_latin1.txt")
    result = run_axr("detect", str(files / "utf8.txt"), "--rules", str(tmp_path / "rules_latin1.txt"), check=False)
    said = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2 and len(said) == 1 and "rules_latin1.txt:4: not UTF-8" in said[0]
