"""Text files users bring (caption files, label files, rule books): decoded the way their tools write them.

UTF-8, UTF-8 with a byte-order mark and UTF-16 or UTF-32 with one (as Windows tools write) are read as they are;
any other encoding is one error naming the file, the line and the fix (`--encoding`, where a command has it).
NUL bytes are dropped and CRLF or CR line ends read as LF. Lines are split at line ends only: a form feed or a
Unicode line separator inside a caption does not shift the frames after it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

# a caption longer than this is cut for the embedder and the model (MiniLM reads about 256 tokens; the rule
# stages' prompts budget a caption at that); `axr caption` caps its captions at 800 characters
MAX_CAPTION_CHARS = 1000

BOMS = (  # longest first: UTF-32 LE's mark starts with UTF-16 LE's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class TextFileError(ValueError):
    """A text file that cannot be decoded; the message names the file, the line and the fix."""


def read_text(path: Path, encoding: str | None = None, option: str | None = "--encoding") -> str:
    """The file's text: by its byte-order mark if it has one, else by `encoding`, else as UTF-8. `option`: the
    command's way to say the encoding, named in the error (None: the file must be UTF-8 or UTF-16)."""
    data = Path(path).read_bytes()
    chosen = next((name for mark, name in BOMS if data.startswith(mark)), None) or encoding or "utf-8"
    try:
        text = data.decode(chosen)
    except LookupError:
        raise TextFileError(f"{path}: unknown encoding {encoding!r} (try utf-8, latin-1, cp1252)") from None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        byte = data[error.start : error.start + 1].hex()
        fix = f", or say its encoding with {option} (e.g. {option} latin-1)" if option else ""
        raise TextFileError(
            f"{path}:{line}: not {chosen.upper()} (byte 0x{byte} at column {column}); save the file as UTF-8{fix}"
        ) from None
    return text.replace("\0", "")


def read_lines(path: Path, encoding: str | None = None, option: str | None = "--encoding") -> list[str]:
    """The file's lines (see `read_text`), without their line ends; a last line end opens no empty line."""
    text = read_text(path, encoding, option).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def cut_caption(text: str) -> tuple[str, bool]:
    """(the caption stripped and at most MAX_CAPTION_CHARS long, whether it was cut)."""
    text = text.strip()
    return (text[:MAX_CAPTION_CHARS], True) if len(text) > MAX_CAPTION_CHARS else (text, False)
