"""Dataset adapters on small folders built in each dataset's real layout, and their layout errors."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from axr.eval.datasets import LayoutError, adapter_names, load_samples
from tests.conftest import write_mp4


def _image(path, value=128, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def _mask(path, box, size=(40, 30)):
    """A mask with the pixels of box (x0, y0, x1, y1 in pixels) set."""
    pixels = np.zeros((size[1], size[0]), dtype=np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture()
def mvtec_ad(tmp_path):
    root = tmp_path / "mvtec"
    for category in ("bottle", "screw"):
        for i in range(2):
            _image(root / category / "train" / "good" / f"{i:03d}.png")
        _image(root / category / "test" / "good" / "000.png")
        _image(root / category / "test" / "broken_large" / "000.png", 30)
        _mask(root / category / "ground_truth" / "broken_large" / "000_mask.png", (10, 6, 20, 12))
    return root


def test_mvtec_ad_samples_labels_types_and_boxes_from_masks(mvtec_ad):
    train = load_samples("mvtec_ad", mvtec_ad, "train")
    assert len(train) == 4 and {s.gt_label for s in train} == {0}
    test = load_samples("mvtec_ad", mvtec_ad, "test")
    assert len(test) == 4
    broken = next(s for s in test if s.sample_id == "bottle/test/broken_large/000")
    assert broken.gt_label == 1 and broken.gt_type == "broken_large" and broken.meta["category"] == "bottle"
    assert broken.gt_box == pytest.approx([10 / 40, 6 / 30, 20 / 40, 12 / 30])
    good = next(s for s in test if s.sample_id == "screw/test/good/000")
    assert good.gt_label == 0 and good.gt_box is None
    assert len(load_samples("mvtec_ad", mvtec_ad / "screw", "test")) == 2  # a single category folder works too


def test_mvtec_ad_layout_errors_name_what_is_missing(mvtec_ad, tmp_path):
    (mvtec_ad / "bottle" / "ground_truth" / "broken_large" / "000_mask.png").unlink()
    with pytest.raises(LayoutError, match="000_mask.png: missing ground-truth mask"):
        load_samples("mvtec_ad", mvtec_ad, "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no category folders with a test/ folder"):
        load_samples("mvtec_ad", tmp_path / "empty", "test")
    with pytest.raises(LayoutError, match="does not exist"):
        load_samples("mvtec_ad", tmp_path / "nowhere", "test")
    with pytest.raises(LayoutError, match="unknown dataset adapter 'mvtec'; known: " + ", ".join(adapter_names())):
        load_samples("mvtec", mvtec_ad)


def test_mvtec_loco_mask_folders_and_validation_split(tmp_path):
    root = tmp_path / "loco" / "juice_bottle"
    _image(root / "train" / "good" / "000.png")
    _image(root / "validation" / "good" / "000.png")
    _image(root / "test" / "good" / "000.png")
    _image(root / "test" / "logical_anomalies" / "000.png", 20)
    _mask(root / "ground_truth" / "logical_anomalies" / "000" / "000.png", (0, 0, 4, 4))
    _mask(root / "ground_truth" / "logical_anomalies" / "000" / "001.png", (30, 20, 40, 30))
    test = load_samples("mvtec_loco", root.parent, "test")
    logical = next(s for s in test if s.gt_label)
    assert logical.gt_type == "logical_anomalies" and len(logical.meta["masks"]) == 2
    assert logical.gt_box == pytest.approx([0, 0, 1, 1])  # the box around both masks
    assert len(load_samples("mvtec_loco", root.parent, "validation")) == 1
    (root / "ground_truth" / "logical_anomalies" / "000" / "000.png").unlink()
    (root / "ground_truth" / "logical_anomalies" / "000" / "001.png").unlink()
    with pytest.raises(LayoutError, match="missing ground-truth mask folder"):
        load_samples("mvtec_loco", root.parent, "test")


def test_visa_split_csv(tmp_path):
    root = tmp_path / "visa"
    _image(root / "candle" / "Data" / "Images" / "Normal" / "0000.JPG")
    _image(root / "candle" / "Data" / "Images" / "Anomaly" / "0001.JPG", 10)
    _mask(root / "candle" / "Data" / "Masks" / "Anomaly" / "0001.png", (0, 0, 20, 15))
    (root / "split_csv").mkdir()
    (root / "split_csv" / "1cls.csv").write_text(
        "object,split,label,image,mask\n"
        "candle,train,normal,candle/Data/Images/Normal/0000.JPG,\n"
        "candle,test,anomaly,candle/Data/Images/Anomaly/0001.JPG,candle/Data/Masks/Anomaly/0001.png\n"
    )
    (test,) = load_samples("visa", root, "test")
    assert test.gt_label == 1 and test.gt_box == pytest.approx([0, 0, 0.5, 0.5]) and test.meta["category"] == "candle"
    assert [s.gt_label for s in load_samples("visa", root, "train")] == [0]
    (root / "split_csv" / "1cls.csv").write_text("object,split,image\ncandle,test,x.png\n")
    with pytest.raises(LayoutError, match="missing column"):
        load_samples("visa", root, "test")


def test_mmad_one_sample_per_question_with_templates(tmp_path):
    root = tmp_path / "mmad"
    _image(root / "MVTec-AD" / "bottle" / "test" / "broken_large" / "000.png")
    _image(root / "MVTec-AD" / "bottle" / "train" / "good" / "001.png")
    entry = {
        "image_path": "MVTec-AD/bottle/test/broken_large/000.png",
        "similar_templates": ["MVTec-AD/bottle/train/good/001.png"],
        "conversation": [
            {
                "Question": "Is there any defect?",
                "Answer": "A",
                "Options": {"A": "Yes.", "B": "No."},
                "type": "Anomaly Detection",
            },
            {
                "Question": "What defect?",
                "Answer": "C",
                "Options": {"A": "Scratch", "B": "Hole", "C": "Break"},
                "type": "Defect Classification",
            },
        ],
    }
    (root / "mmad.json").write_text(json.dumps({"MVTec-AD/bottle/test/broken_large/000.png": entry}))
    samples = load_samples("mmad", root, "test")
    assert [s.meta["question_type"] for s in samples] == ["Anomaly Detection", "Defect Classification"]
    assert samples[1].meta["answer"] == "C" and samples[0].references[0].endswith("001.png")
    assert samples[0].gt_label == 1
    entry["conversation"][0]["Answer"] = "Z"
    (root / "mmad.json").write_text(json.dumps({"k": entry}))
    with pytest.raises(LayoutError, match="question 0: Options must map letters"):
        load_samples("mmad", root, "test")
    with pytest.raises(LayoutError, match="only a test split"):
        load_samples("mmad", root, "train")


def test_cuva_annotations_with_release_spellings(tmp_path):
    root = tmp_path / "cuva"
    (root / "videos").mkdir(parents=True)
    write_mp4(root / "videos" / "clip1.mp4", 12)
    annotations = [
        {
            "Video_name": "clip1",
            "Type": "Traffic accident",
            "Description": "a car hits a pole",
            "Cause": "the driver was speeding",
            "Result": "the car is wrecked",
            "Moment": ["1.5-3", "4-5"],
        }
    ]
    (root / "annotations.json").write_text(json.dumps(annotations))
    (sample,) = load_samples("cuva", root)
    assert sample.gt_type == "Traffic accident" and sample.gt_span == [1.5, 3.0] and sample.gt_label == 1
    assert sample.gt_rationale.why == "the driver was speeding" and sample.meta["moments"][1] == [4.0, 5.0]
    (root / "annotations.json").write_text(json.dumps([{"video": "missing", "moments": [[1, 2]]}]))
    with pytest.raises(LayoutError, match="no video file missing.mp4"):
        load_samples("cuva", root)
    (root / "annotations.json").write_text(json.dumps([{"video": "clip1", "moments": ["9-2"]}]))
    with pytest.raises(LayoutError, match="moment '9-2' is not"):
        load_samples("cuva", root)


def test_timeseries_windows_and_splits(tmp_path):
    lines = ["timestamp,value,label"] + [f"{i},{np.sin(i / 5):.4f},{int(150 <= i < 160)}" for i in range(200)]
    (tmp_path / "ts").mkdir()
    (tmp_path / "ts" / "pump.csv").write_text("\n".join(lines))
    test = load_samples("timeseries_csv", tmp_path / "ts", "test", window=20, stride=10, train_fraction=0.3)
    train = load_samples("timeseries_csv", tmp_path / "ts", "train", window=20, stride=10, train_fraction=0.3)
    assert all(len(s.series) == 20 for s in test + train)
    assert {s.meta["start"] for s in train} == {0, 10, 20, 30, 40}
    assert min(s.meta["start"] for s in test) == 60
    assert {s.meta["start"] for s in test if s.gt_label} == {140, 150}
    (tmp_path / "ts" / "pump.csv").write_text("timestamp,value,label\n0,abc,0\n")
    with pytest.raises(LayoutError, match="pump.csv:2: timestamp and value must be numbers"):
        load_samples("timeseries_csv", tmp_path / "ts", "test")


def test_jsonl_resolves_paths_and_names_the_bad_line(tmp_path):
    _image(tmp_path / "imgs" / "a.png")
    rows = [
        {"sample_id": "a", "image_path": "imgs/a.png", "gt_label": 1},
        {"sample_id": "b", "image_path": "imgs/a.png", "gt_label": 0, "split": "train"},
    ]
    (tmp_path / "samples.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (sample,) = load_samples("jsonl", tmp_path, "test")
    assert sample.image_path == str(tmp_path / "imgs" / "a.png")
    (tmp_path / "samples.jsonl").write_text(json.dumps(rows[0]) + "\n" + '{"sample_id": "c"}\n{"broken\n')
    good, missing, broken = load_samples("jsonl", tmp_path, "test")  # the good line is not lost with the bad
    assert good.sample_id == "a" and (missing.sample_id, broken.sample_id) == ("samples.jsonl:2", "samples.jsonl:3")
    assert re.search(r"samples.jsonl:2: .*needs image_path", missing.meta["load_error"])
    assert "samples.jsonl:3: not JSON" in broken.meta["load_error"]


def test_textile_from_the_package(textile_root):
    test = load_samples("textile", textile_root, "test", normal_train=100)
    assert len(test) == 1900 and sum(s.gt_label for s in test) == 1000
    assert {s.gt_type for s in test if s.gt_label} == {"local", "global"}
    assert len(load_samples("textile", textile_root, "train", normal_train=100)) == 100
