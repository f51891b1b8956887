"""Append-only JSONL journals of finished records, keyed by sample id: the basis of resumable runs.

Each record is written and flushed as soon as it exists, so a run killed at any point (even SIGKILL) loses
at most the line being written; reopening the journal skips a torn last line and never duplicates a key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Journal:
    def __init__(self, path: str | Path, key: str = "sample_id"):
        self.path, self.key = Path(path), key
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a killed run was writing
                self.records[record[key]] = record  # a retried record replaces the earlier one
            self.compact()  # drop a torn tail so that appends start on a clean line

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, records: list[dict[str, Any]], replace: bool = False) -> None:
        """Write records whose keys are new (or, with `replace`, any: the later line wins on reopening)."""
        fresh = [r for r in records if replace or r[self.key] not in self.records]
        if not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as sink:
            for record in fresh:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.records[record[self.key]] = record
            sink.flush()
            os.fsync(sink.fileno())

    def drop(self, keys) -> None:
        """Forget these records (the file is rewritten without them: rare, e.g. a retried video whose frames
        replace its error record)."""
        for key in keys:
            self.records.pop(key, None)
        self.compact()

    def compact(self) -> None:
        """Rewrite the file with one line per key (the latest), atomically."""
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values())
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path)
