"""JSONL classification shell: (id, text) lines in, (id, tags...) lines out, in chunks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from monitor.classify import Classifier


def parse_line(line: str) -> tuple[Any, str] | None:
    """(id, text) from one JSONL line, or None when it is not an object with a string text."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None
    return obj.get("id"), obj["text"]


def classify_jsonl(classifier: Classifier, src: Iterable[str], dst: IO[str], chunk: int = 256) -> int:
    """Classify every valid line of ``src`` into ``dst``; returns how many lines were skipped."""
    skipped = 0
    batch: list[tuple[Any, str]] = []

    def flush() -> None:
        tags = classifier.predict([t for _, t in batch])
        for (item_id, _), tag in zip(batch, tags, strict=True):
            dst.write(json.dumps({"id": item_id, **tag.as_dict()}, ensure_ascii=False) + "\n")
        dst.flush()
        batch.clear()

    for line in src:
        if not line.strip():
            continue
        parsed = parse_line(line)
        if parsed is None:
            skipped += 1
            continue
        batch.append(parsed)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return skipped
