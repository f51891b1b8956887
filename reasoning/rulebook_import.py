"""Import rule books written in AnomalyRuler's Markdown format, so users can start from published ones.

The format: bold headings such as `**Rules for Anomaly Human Activities:**` followed by numbered rules.
A heading says whether its rules are normal or anomalous ("anomaly"/"abnormal" vs "normal") and which
section they belong to (human activities vs environmental / non-human objects).
"""

from __future__ import annotations

import re
from pathlib import Path

from axr.reasoning.resources import package_dir, resolve
from axr.reasoning.schema import Provenance, Rule, RuleBook, RuleSection, SchemaError, named_yaml
from axr.reasoning.text_files import TextFileError, read_lines

_HEADING = re.compile(r"^\*\*(.+?)\*\*:?\s*$")
_ITEM = re.compile(r"^\s*\d+[.)]\s*(.+?)\s*$")


def _section_of(heading: str) -> tuple[str, str]:
    lowered = heading.lower()
    kind = "anomaly" if ("anomal" in lowered or "abnormal" in lowered) else "normal"
    name = "human activity" if ("human activit" in lowered and "non-human" not in lowered) else "environment"
    return kind, name


def import_anomalyruler(path: str | Path, name: str | None = None) -> RuleBook:
    """Parse an AnomalyRuler rule file into a RuleBook (sections: human activity, environment)."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: rule file not found")
    sections = {"human activity": RuleSection(name="human activity"), "environment": RuleSection(name="environment")}
    current: tuple[str, str] | None = None
    counters: dict[str, int] = {}
    try:
        lines = read_lines(path, option=None)
    except TextFileError as error:
        raise SchemaError(str(error)) from None
    for number, line in enumerate(lines, start=1):
        if heading := _HEADING.match(line.strip()):
            current = _section_of(heading.group(1))
            continue
        item = _ITEM.match(line)
        if not item:
            continue
        if current is None:
            raise SchemaError(f"{path}:{number}: a numbered rule before any **heading**")
        kind, section = current
        prefix = ("n" if kind == "normal" else "a") + ("h" if section == "human activity" else "e")
        counters[prefix] = counters.get(prefix, 0) + 1
        rule = Rule(id=f"{prefix}{counters[prefix]}", text=item.group(1))
        getattr(sections[section], kind).append(rule)
    book = RuleBook(
        name=name or path.stem,
        domain="scene",
        sections=[s for s in sections.values() if s.normal or s.anomaly],
        provenance=Provenance(source=str(path), prompt_version="anomalyruler-markdown"),
    )
    if not book.rules("anomaly"):
        raise SchemaError(f"{path}: no anomaly rules found (expected a **...Anomaly...** heading with numbered rules)")
    return book


def load_rules(path: str | Path) -> RuleBook:
    """A RuleBook YAML, or an AnomalyRuler Markdown rule file (any other suffix); a path, a `data:` reference,
    or the name of a book AXR ships (`surveillance`).

    A book with no enabled anomaly rules is refused here, for every command: nothing could ever be judged
    against it (an induction's `.partial.yaml`, normal rules only, is for a person to read, not to detect)."""
    path = shipped_rulebook(path) or resolve(path)
    book = RuleBook.load(path) if path.suffix in (".yaml", ".yml") else import_anomalyruler(path)
    if not book.rules("anomaly", enabled_only=True):
        raise SchemaError(f"{path}: rule book {book.name!r} has no enabled anomaly rules (nothing to detect)")
    return book


def shipped_rulebook(name: str | Path) -> Path | None:
    """The shipped book a bare name (no folder, no suffix, not a file here) names; None for anything else."""
    text = str(name)
    if Path(text).exists() or "/" in text or "\\" in text or "." in text or ":" in text:
        return None
    return named_yaml(text, package_dir("axr.reasoning.rulebooks"), "rule book")
