"""Load and check images, sample video frames, size images the way Qwen2.5-VL expects.

Every failure is a `MediaError` whose message names the file and what is wrong with it, so a batch run can
record it against the sample and go on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# Larger images are refused before decoding: a 20000x20000 PNG is a few KB on disk and 1.2 GB in memory.
MAX_IMAGE_PIXELS = 64_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}  # a GIF: its first frame
# VLM processors refuse longer strips (Qwen2.5-VL: "absolute aspect ratio must be smaller than 200"), and
# would stop a whole batch: refused here instead, with the file named, so a batch skips and records it.
MAX_ASPECT_RATIO = 200
# Frames are kept decoded in memory: a long video read at its full rate would take it all. Past this many
# kept frames a video is refused, naming the file and the way out (a lower fps or a stride).
MAX_VIDEO_FRAMES = 20_000
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}

# Qwen2.5-VL: 14 px patches merged 2x2, so sides are multiples of 28; pixel budget as its processor defaults.
PATCH_FACTOR = 28
MIN_PIXELS = 4 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28


class MediaError(ValueError):
    """An image or video that cannot be used; the message says which and why."""


ImageSource = str | Path | bytes | Image.Image


def _name(src: ImageSource) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    return "<bytes>" if isinstance(src, bytes) else "<image>"


def load_image(src: ImageSource, max_image_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB image, decoded and checked. Raises MediaError with the file name on any problem."""
    name = _name(src)
    if isinstance(src, Image.Image):
        image = src
    else:
        if isinstance(src, (str, Path)):
            path = Path(src)
            if not path.is_file():
                raise MediaError(f"{name}: file not found")
            if path.stat().st_size == 0:
                raise MediaError(f"{name}: file is empty (0 bytes)")
            data = path.read_bytes()
        else:
            data = src
            if not data:
                raise MediaError(f"{name}: no bytes")
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise MediaError(f"{name}: not an image (unrecognised format)") from None
        except Image.DecompressionBombError as err:
            raise MediaError(f"{name}: image too large ({err})") from None
        except OSError as err:
            raise MediaError(f"{name}: corrupt or truncated image ({err})") from None
    width, height = image.size
    if width == 0 or height == 0:
        raise MediaError(f"{name}: image has zero size ({width}x{height})")
    if width * height > max_image_pixels:
        raise MediaError(
            f"{name}: image too large ({width}x{height} = {width * height:,} pixels; limit {max_image_pixels:,})"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise MediaError(
            f"{name}: aspect ratio {width}x{height} ({max(width, height) / min(width, height):.0f}:1) is over "
            f"{MAX_ASPECT_RATIO}:1, which vision-language models cannot take"
        )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"{name}: corrupt or truncated image ({err})") from None
    return to_rgb(image, name)


def to_rgb(image: Image.Image, name: str = "<image>") -> Image.Image:
    """RGB, whatever the mode: alpha is composited on white, 16-bit greys are scaled, palettes expanded."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        span = float(array.max() - array.min()) or 1.0
        grey = ((array - array.min()) / span * 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise MediaError(f"{name}: unsupported image mode {image.mode!r} ({err})") from None


def sha256_of(src: ImageSource) -> str:
    """Content hash for caches: the file's bytes, or the pixels of an in-memory image."""
    if isinstance(src, (str, Path)):
        digest = hashlib.sha256()
        with open(src, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    if isinstance(src, bytes):
        return hashlib.sha256(src).hexdigest()
    image = to_rgb(src)
    return hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()


def smart_resize(
    height: int, width: int, factor: int = PATCH_FACTOR, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """Qwen2.5-VL's sizing: sides multiples of `factor`, area within [min_pixels, max_pixels], aspect kept."""
    if max(height, width) / min(height, width) > 200:
        raise MediaError(f"aspect ratio of {width}x{height} is over 200, which Qwen2.5-VL cannot take")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def fit_image(image: Image.Image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Resize to the size the VLM will use anyway, so every backend sees the same pixels."""
    h, w = smart_resize(image.height, image.width, min_pixels=min_pixels, max_pixels=max_pixels)
    if (w, h) == image.size:
        return image
    return image.resize((w, h), Image.Resampling.BICUBIC)


def data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """A base64 data URL, as OpenAI-compatible servers take images."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    mime = "jpeg" if fmt.upper() == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def image_stats(image: Image.Image, grid: int = 3) -> str:
    """Measurements a text-only model can read instead of the pixels (brightness, contrast, odd regions).

    This is how a text-only model takes part in perception; it sees numbers, not the image, and the output
    says so.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    mean, std = grey.mean(), grey.std()
    names = ["top", "middle", "bottom"] if grid == 3 else [str(i) for i in range(grid)]
    cols = ["left", "centre", "right"] if grid == 3 else [str(i) for i in range(grid)]
    cells = []
    for i, rows in enumerate(np.array_split(grey, grid, axis=0)):
        for j, cell in enumerate(np.array_split(rows, grid, axis=1)):
            z = (cell.mean() - mean) / (std + 1e-6)
            cells.append((abs(z), f"{names[i]} {cols[j]}", cell.mean(), cell.std()))
    cells.sort(reverse=True)
    odd = "; ".join(f"{where}: brightness {m:.2f}, texture {s:.2f}" for _, where, m, s in cells[:2])
    r, g, b = rgb.reshape(-1, 3).mean(axis=0)
    return (
        f"size {image.width}x{image.height}; mean brightness {mean:.2f}; contrast {std:.2f}; "
        f"mean colour R{r:.2f} G{g:.2f} B{b:.2f}; regions differing most from the rest: {odd}"
    )


@dataclass
class Frame:
    index: int
    timestamp: float
    image: Image.Image


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder (recursively), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise MediaError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def sample_frames(
    video: str | Path, fps: float | None = None, stride: int | None = None, max_frames: int | None = None
) -> list[Frame]:
    """Frames of a video file, or of a folder of frame images, taken every `stride` frames or at `fps`.

    With neither, every frame is taken (caption sets are per frame). A folder of frames has no clock: its
    timestamps are frame indices divided by `fps` when given, else 25 fps is assumed.
    """
    if fps is not None and stride is not None:
        raise MediaError("give either fps or stride, not both")
    path = Path(video)
    if path.is_dir():
        frames = _folder_frames(path, fps, stride)
    elif path.is_file():
        frames = _video_frames(path, fps, stride)
    else:
        raise MediaError(f"{path}: video not found")
    if not frames:
        raise MediaError(f"{path}: video has no frames")
    return frames[:max_frames] if max_frames else frames


def _folder_frames(path: Path, fps: float | None, stride: int | None) -> list[Frame]:
    files = list_images(path)
    rate = 25.0
    step = stride or (max(1, round(rate / fps)) if fps else 1)
    return [Frame(i, i / rate, load_image(f)) for i, f in enumerate(files) if i % step == 0]


def _video_frames(path: Path, fps: float | None, stride: int | None) -> list[Frame]:
    try:
        import av
    except ImportError:
        raise MediaError("reading video files needs PyAV: pip install 'axr[hf]'") from None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 25)
            step = stride or (max(1, round(rate / fps)) if fps else 1)
            frames = []
            for i, frame in enumerate(container.decode(stream)):
                if i % step:
                    continue
                if frame.width * frame.height > MAX_IMAGE_PIXELS:
                    raise MediaError(f"{path}: frames of {frame.width}x{frame.height} are too large")
                if len(frames) == MAX_VIDEO_FRAMES:
                    raise MediaError(
                        f"{path}: more than {MAX_VIDEO_FRAMES:,} frames at this rate; take fewer with fps or stride"
                    )
                stamp = float(frame.time) if frame.time is not None else i / rate
                frames.append(Frame(i, stamp, frame.to_image().convert("RGB")))
            return frames
    except (av.error.FFmpegError, IndexError) as err:
        raise MediaError(f"{path}: cannot decode video ({err})") from None


def render_series(values: list[float], size: tuple[int, int] = (448, 224)) -> Image.Image:
    """A time-series window drawn as a plain line plot (white ground, black line, grey midline) for a VLM."""
    from PIL import ImageDraw

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(0, height // 2), (width, height // 2)], fill=(200, 200, 200))
    if len(values) < 2:
        return image
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    margin = 8
    points = [
        (
            margin + i * (width - 2 * margin) / (len(values) - 1),
            height - margin - (v - low) / span * (height - 2 * margin),
        )
        for i, v in enumerate(values)
    ]
    draw.line(points, fill="black", width=2)
    return image


def even_frames(frames: list[Frame], count: int) -> list[Frame]:
    """`count` frames spread evenly over the list (all of them when there are fewer)."""
    if len(frames) <= count:
        return frames
    step = (len(frames) - 1) / (count - 1) if count > 1 else 0
    return [frames[round(i * step)] for i in range(count)]


def region_name(x: float, y: float, centre: str = "centre") -> str:
    """A point given as fractions of the image, in words: "top left", "bottom centre", "centre"...
    (`centre="center"` for texts written in US spelling, such as MMAD's options)."""
    vertical = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"
    horizontal = "left" if x < 1 / 3 else "right" if x > 2 / 3 else centre
    return centre if (vertical, horizontal) == ("middle", centre) else f"{vertical} {horizontal}"


def pixel_box(pixels: np.ndarray) -> list[float]:
    """The normalised [x0, y0, x1, y1] box around the set pixels of a non-empty boolean mask."""
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    height, width = pixels.shape
    return [cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height]


def draw_box(image, box: list[float] | None, color: str = "#ff2020") -> None:
    """Draw a normalised [x0, y0, x1, y1] box on `image` in place (nothing when there is no box)."""
    from PIL import ImageDraw

    if box:
        width, height = image.size
        ImageDraw.Draw(image).rectangle(
            [box[0] * width, box[1] * height, box[2] * width, box[3] * height],
            outline=color,
            width=max(2, width // 150),
        )


def boxed_image(image, verdict, color: str = "#ff2020"):
    """A copy of `image` with the verdict's (model or dict) box drawn on it; unchanged when it has no box."""
    from axr.reasoning.schema import location_box

    image = image.convert("RGB").copy()
    draw_box(image, location_box(verdict), color)
    return image
