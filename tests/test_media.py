import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from axr.reasoning.media import (
    MediaError,
    data_url,
    fit_image,
    image_stats,
    load_image,
    sample_frames,
    sha256_of,
    smart_resize,
)
from tests.conftest import write_mp4


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    )


def test_missing_empty_corrupt_and_truncated(tmp_path):
    with pytest.raises(MediaError, match="nope.png: file not found"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty.png: file is empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(MediaError, match="text.jpg: not an image"):
        load_image(tmp_path / "text.jpg")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:200])
    with pytest.raises(MediaError, match="cut.jpg: corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(MediaError, match="bomb.png: image too large"):
        load_image(path)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "I;16", "CMYK", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new(mode, (30, 20))
    assert load_image(image).mode == "RGB"


def test_alpha_composited_on_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert load_image(image).getpixel((0, 0)) == (255, 255, 255)


def test_smart_resize_matches_qwen_vl_utils():
    qwen = pytest.importorskip("qwen_vl_utils.vision_process")
    for h, w in [(250, 250), (1080, 1920), (50, 3000), (28, 28), (4000, 3000)]:
        assert smart_resize(h, w) == qwen.smart_resize(h, w, factor=28), (h, w)
    with pytest.raises(MediaError, match="aspect ratio"):
        smart_resize(10, 5000)


def test_fit_image_and_data_url():
    image = fit_image(Image.new("RGB", (250, 250)), max_pixels=12544)
    assert image.size[0] % 28 == 0 and image.size[0] * image.size[1] <= 12544
    assert data_url(image).startswith("data:image/png;base64,")


def test_sha256_is_content_not_name(tmp_path):
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.png").read_bytes())
    assert sha256_of(tmp_path / "a.png") == sha256_of(tmp_path / "b.png")


def test_image_stats_points_at_odd_region():
    array = np.full((90, 90, 3), 128, dtype=np.uint8)
    array[:30, :30] = 255
    assert "top left" in image_stats(Image.fromarray(array)).split("differing most from the rest:")[1][:20]


def test_video_frames_by_stride_and_fps(tmp_path):
    pytest.importorskip("av")
    path = write_mp4(tmp_path / "clip.mp4", 20)
    assert [f.index for f in sample_frames(path, stride=5)] == [0, 5, 10, 15]
    by_fps = sample_frames(path, fps=2)
    assert [f.index for f in by_fps] == [0, 5, 10, 15] and by_fps[1].timestamp == pytest.approx(0.5)
    assert len(sample_frames(path, max_frames=3)) == 3
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaError, match="broken.mp4: cannot decode video"):
        sample_frames(tmp_path / "broken.mp4")


def test_frame_folder_and_empty_video(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(frames / f"{i:03d}.jpg")
    assert [f.index for f in sample_frames(frames, stride=2)] == [0, 2, 4]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaError, match="video has no frames"):
        sample_frames(tmp_path / "empty")


def test_a_video_with_too_many_frames_is_refused_naming_it(tmp_path, monkeypatch):
    from axr.reasoning import media

    path = write_mp4(tmp_path / "long.mp4", 30)
    monkeypatch.setattr(media, "MAX_VIDEO_FRAMES", 10)  # the real limit (20,000) by a shorter clip
    with pytest.raises(MediaError, match=r"long.mp4: more than 10 frames at this rate; take fewer with fps"):
        sample_frames(path)
    assert len(sample_frames(path, stride=3)) == 10  # a stride brings it under the limit
