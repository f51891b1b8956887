"""MkDocs hooks: a dataset page is its data card (`data_cards/<name>.md`, one source for the package's cards
and the site), without the card's YAML front matter."""

from __future__ import annotations

import re
from pathlib import Path

MARKER = re.compile(r"<!-- data card: (\S+)")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def on_page_markdown(markdown, page, config, files):
    match = MARKER.match(markdown)
    if not match:
        return markdown
    card = Path(config.config_file_path).parent / match.group(1)
    return FRONT_MATTER.sub("", card.read_text(encoding="utf-8"), count=1)
