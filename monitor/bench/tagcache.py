"""Classifier tags cached per model version, keyed by a hash of the text (outside the repository).

``<root>/<model version>.jsonl`` holds one line per classified text: ``{"k": sha1, "sentiment", "topic",
"sentiment_score"}``. Lines are appended as batches finish, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monitor.schema import Tags

log = logging.getLogger(__name__)
KEPT = ("sentiment", "topic", "sentiment_score")


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def cache_file(root: Path, model_version: str) -> Path:
    return Path(root) / (re.sub(r"[^A-Za-z0-9._-]+", "_", model_version) + ".jsonl")


def load_cache(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interrupted run: classified again
            continue
        out[row.pop("k")] = row
    return out


def cached_tags(
    texts: Sequence[str],
    path: Path,
    predict: Callable[[Sequence[str]], list[Tags]] | None,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """Tags for every text, classifying (and appending) only the ones not cached yet."""
    cache = load_cache(path)
    missing = list(dict.fromkeys(t for t in texts if text_key(t) not in cache))
    if missing:
        if predict is None:
            raise LookupError(f"{len(missing)} texts have no cached tags in {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("classifying %d texts into %s", len(missing), path)
        with path.open("a") as fh:
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                for text, tag in zip(batch, predict(batch), strict=True):
                    row = {k: tag.as_dict()[k] for k in KEPT}
                    cache[text_key(text)] = row
                    fh.write(json.dumps({"k": text_key(text), **row}) + "\n")
                fh.flush()
    return [cache[text_key(t)] for t in texts]
