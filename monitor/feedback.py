"""Analysts' corrections: record them (never touching the stored tags), read them back, export them as
``text,label`` training files (one per task) for ``finpulse train --feedback``.

The latest correction of an item wins; an item corrected only for its topic contributes no sentiment label.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.errors import FinPulseError
from monitor.labels import SENTIMENTS, TOPICS
from monitor.store import feedback, news_items, news_tags

EXPORT_FILES = {"sentiment": "feedback-sentiment.csv", "topic": "feedback-topic.csv"}


class FeedbackError(FinPulseError):
    """A correction that cannot be recorded (unknown item or label, nothing changed, no analyst name)."""


@dataclass(frozen=True, slots=True)
class Correction:
    item_id: str
    analyst: str
    new_sentiment: str | None = None
    new_topic: str | None = None


def record_correction(conn: Connection, c: Correction, now: datetime) -> int:
    """Store one correction against the item's stored tags; returns its id. Labels are checked here."""
    analyst = c.analyst.strip()[:100]
    if not analyst:
        raise FeedbackError("a correction needs the analyst's name")
    if c.new_sentiment is not None and c.new_sentiment not in SENTIMENTS:
        raise FeedbackError(f"unknown sentiment {c.new_sentiment!r}")
    if c.new_topic is not None and c.new_topic not in TOPICS:
        raise FeedbackError(f"unknown topic {c.new_topic!r}")
    row = conn.execute(
        sa.select(news_items.c.title, news_tags.c.sentiment, news_tags.c.topic, news_tags.c.model_version)
        .select_from(news_items.join(news_tags, news_tags.c.item_id == news_items.c.id))
        .where(news_items.c.id == c.item_id)
    ).one_or_none()
    if row is None:
        raise FeedbackError(f"no tagged item {c.item_id!r}")
    title, sentiment, topic, version = row
    new_sentiment = c.new_sentiment if c.new_sentiment != sentiment else None
    new_topic = c.new_topic if c.new_topic != topic else None
    if new_sentiment is None and new_topic is None:
        raise FeedbackError("the correction names the labels the model already gave")
    values = {"item_id": c.item_id, "text": title, "old_sentiment": sentiment, "new_sentiment": new_sentiment,
              "old_topic": topic, "new_topic": new_topic, "model_version": version, "analyst": analyst,
              "created_at": now}  # fmt: skip
    return int(conn.execute(feedback.insert().returning(feedback.c.id), [values]).scalar_one())


FEEDBACK_COLUMNS = ["item_id", "text", "old_sentiment", "new_sentiment", "old_topic", "new_topic",
                    "model_version", "analyst", "created_at"]  # fmt: skip


def latest_corrections(conn: Connection, item_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The newest correction per item (of ``item_ids``, or of all items), oldest item first."""
    newest = sa.select(feedback.c.item_id, sa.func.max(feedback.c.id).label("id")).group_by(
        feedback.c.item_id
    )
    if item_ids is not None:
        newest = newest.where(feedback.c.item_id.in_(list(item_ids)))
    sub = newest.subquery()
    stmt = (
        sa.select(*[feedback.c[c] for c in FEEDBACK_COLUMNS])
        .join(sub, sub.c.id == feedback.c.id)
        .order_by(feedback.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def training_rows(corrections: Sequence[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    """Pure: task -> (text, label) rows from the latest corrections (an uncorrected head gives no row)."""
    out: dict[str, list[tuple[str, str]]] = {"sentiment": [], "topic": []}
    for c in corrections:
        if c["new_sentiment"]:
            out["sentiment"].append((c["text"], c["new_sentiment"]))
        if c["new_topic"]:
            out["topic"].append((c["text"], c["new_topic"]))
    return out


def export_training_files(conn: Connection, out_dir: Path) -> dict[str, tuple[Path, int]]:
    """Write ``feedback-sentiment.csv`` and ``feedback-topic.csv`` (text,label) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for task, rows in training_rows(latest_corrections(conn)).items():
        path = out_dir / EXPORT_FILES[task]
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows)
        written[task] = (path, len(rows))
    return written


def feedback_extra(folder: Path) -> tuple[str, ...]:
    """``TASK:PATH`` entries (``--extra`` form) for the exported files present in ``folder``."""
    if not folder.is_dir():
        raise FeedbackError(f"feedback folder {folder} does not exist (run `finpulse feedback export`)")
    return tuple(
        f"{task}:{folder / name}" for task, name in EXPORT_FILES.items() if (folder / name).is_file()
    )
