"""The pure pieces of the worker: raw records, decoding a batch, offsets to commit, dead-letter headers, the
``news.tagged`` payload and classification with outage detection. No Kafka or database I/O here."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import TopicPartition

from monitor.classify import Classifier
from monitor.emerging import EmergingNames, Story, link_stories
from monitor.entities import EntityLink, EntityLinker
from monitor.faults import ModelOutage, describe
from monitor.schema import Limits, NewsItem, ParseError, Tags, parse_news, story_key

log = logging.getLogger(__name__)


def derive_max_poll_interval_ms(batch_size: int, max_wait_ms: int, seconds_per_item: float) -> int:
    """Kafka evicts a member that does not poll within max_poll_interval_ms. Give one batch twice its worst-case
    budget plus the accumulation wait and a 30 s margin (never below kafka's 300 s default)."""
    budget_ms = 2 * batch_size * seconds_per_item * 1000 + max_wait_ms + 30_000
    return int(max(300_000, budget_ms))


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Decoded:
    good: list[tuple[RawRecord, NewsItem]]
    bad: list[tuple[RawRecord, ParseError]]


def decode_batch(records: Sequence[RawRecord], limits: Limits, now: datetime | None = None) -> Decoded:
    good: list[tuple[RawRecord, NewsItem]] = []
    bad: list[tuple[RawRecord, ParseError]] = []
    now = now or datetime.now(UTC)
    for rec in records:
        parsed = parse_news(rec.value, limits, now)
        if isinstance(parsed, ParseError):
            bad.append((rec, parsed))
        else:
            good.append((rec, parsed))
    return Decoded(good, bad)


def commit_offsets(records: Sequence[RawRecord]) -> dict[TopicPartition, int]:
    """Next offset to consume per partition (max offset + 1)."""
    out: dict[TopicPartition, int] = {}
    for rec in records:
        tp = TopicPartition(rec.topic, rec.partition)
        out[tp] = max(out.get(tp, 0), rec.offset + 1)
    return out


def first_offsets(records: Sequence[RawRecord]) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for rec in records:
        tp = TopicPartition(rec.topic, rec.partition)
        out[tp] = min(out.get(tp, rec.offset), rec.offset)
    return out


def dlq_headers(rec: RawRecord, reason: str) -> list[tuple[str, bytes]]:
    return [
        ("reason", reason.encode("utf-8")),
        ("source_topic", rec.topic.encode()),
        ("source_partition", str(rec.partition).encode()),
        ("source_offset", str(rec.offset).encode()),
    ]


MAX_TAGGED_BYTES = 64 * 1024  # far above what the edge limits allow (title, url, 32 tickers)
MAX_DLQ_VALUE_BYTES = 900_000  # a dead letter's value is cut to this if the broker refuses the whole one
PROBE_TEXT = "Shares of Acme Corp were little changed on Tuesday"


def tagged_message(item: NewsItem, tags: Tags, entities: Sequence[EntityLink] = ()) -> bytes:
    """The ``news.tagged`` record: the item without its body, its tags, and its linked ``entities``
    (``key``, ``name``, ``source``; provisional ones have ``source`` "provisional" and a ``~`` key)."""
    payload = item.model_dump(mode="json", exclude={"body"}, exclude_none=True)
    payload.update(tags.as_dict())
    payload["entities"] = [e.as_dict() for e in entities]
    out = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    if len(out) > MAX_TAGGED_BYTES:
        raise ValueError(f"news.tagged record too large: {len(out)} bytes > {MAX_TAGGED_BYTES}")
    return out


def link_items(
    linker: EntityLinker, emerging: EmergingNames | None, items: Sequence[NewsItem]
) -> dict[str, tuple[EntityLink, ...]]:
    """Item id -> linked entities (given tickers, cashtags, dictionary names, provisional names)."""
    stories = [Story(i.title, story_key(i.title), i.published_at, i.tickers) for i in items]
    return {i.id: links for i, links in zip(items, link_stories(linker, emerging, stories), strict=True)}


def classify_safely(classifier: Classifier, items: Sequence[NewsItem]) -> list[Tags | ParseError]:
    """Classify a batch; if the batch call fails, retry item by item so one poisonous text goes to the DLQ
    instead of blocking its partition. When the model fails on a known-good probe text, or on every item of a
    batch of two or more, that is an outage of the model, not bad input: ``ModelOutage`` is raised and
    nothing is dead-lettered."""
    texts = [i.text for i in items]
    try:
        return list(classifier.predict(texts))
    except Exception as exc:  # noqa: BLE001 - the model is third-party code
        log.warning("batch classification failed (%s); probing the model", describe(exc))
        first = exc
    try:
        classifier.predict([PROBE_TEXT])
    except Exception as exc:  # noqa: BLE001
        raise ModelOutage(f"the model fails on a known-good text: {describe(exc)}") from exc
    out: list[Tags | ParseError] = []
    for text in texts:
        try:
            out.append(classifier.predict([text])[0])
        except Exception as exc:  # noqa: BLE001
            out.append(ParseError(f"classifier error: {describe(exc, 480)}"))
    if len(out) > 1 and all(isinstance(o, ParseError) for o in out):
        raise ModelOutage(f"the model failed on all {len(out)} items of the batch: {describe(first)}")
    return out
