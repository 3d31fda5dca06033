"""``finpulse dlq replay``: re-publish dead letters to ``news.raw`` once their cause is fixed.

Reads the dead-letter topic from the start (or from ``--since``), keeps the records whose ``reason`` header
contains ``--reason``, and sends each original value and key back to the raw topic with a ``replayed_from``
header. Replaying is idempotent where it matters: the worker stores items by id (a given id, or a stable hash of
source + url / title), so replaying the same dead letters twice stores nothing twice; a record dead-lettered
twice (at-least-once) is replayed once. Records whose value was cut to fit the DLQ cannot be replayed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from monitor.errors import ConfigError
from monitor.ingest.producer import SendFailed
from monitor.kafka import make_producer
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def source(self) -> tuple[str, str, str]:
        h = self.headers
        return (
            h.get("source_topic", ""),
            h.get("source_partition", ""),
            h.get("source_offset", str(self.offset)),
        )


@dataclass(frozen=True, slots=True)
class Selection:
    replay: list[DeadLetter]
    other_reason: int = 0
    truncated: int = 0
    repeated: int = 0


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO 8601 time (UTC if it has no zone) or a duration back from now (``90m``, ``2h``, ``1d``)."""
    if not text:
        return None
    m = _DURATION.match(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return now - timedelta(**{unit: float(m[1])})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: give an ISO 8601 time or a duration such as 2h or 1d") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def select(letters: Iterable[DeadLetter], reason: str | None, since: datetime | None) -> Selection:
    """Pure: which dead letters to replay (reason substring, case-insensitive; at or after ``since``)."""
    chosen: list[DeadLetter] = []
    seen: set[tuple[str, str, str]] = set()
    other = truncated = repeated = 0
    for d in letters:
        if since is not None and d.timestamp_ms < since.timestamp() * 1000:
            continue
        if reason and reason.casefold() not in d.headers.get("reason", "").casefold():
            other += 1
        elif "value_truncated_from" in d.headers:
            truncated += 1
        elif d.source in seen:
            repeated += 1
        else:
            seen.add(d.source)
            chosen.append(d)
    return Selection(chosen, other, truncated, repeated)


def read_dead_letters(kafka: KafkaSettings, since: datetime | None, idle_ms: int = 2000) -> list[DeadLetter]:
    """Every record of the DLQ topic (from ``since`` when given), read without joining a group."""
    consumer = KafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    try:
        parts = [
            TopicPartition(kafka.topic_dlq, p)
            for p in sorted(consumer.partitions_for_topic(kafka.topic_dlq) or ())
        ]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        if since is not None:
            found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in parts})
            for tp, ot in found.items():
                if ot is not None:
                    consumer.seek(tp, ot.offset)
        out = []
        for m in consumer:  # ends after idle_ms without a record
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers or [])}
            out.append(DeadLetter(m.partition, m.offset, m.timestamp, m.key, m.value, headers))
        return out
    finally:
        consumer.close()


def replay(kafka: KafkaSettings, letters: Sequence[DeadLetter]) -> int:
    """Send each dead letter's original value and key to the raw topic; every send acknowledged or raised."""
    producer = make_producer(kafka)
    try:
        futures: list[Any] = []
        for d in letters:
            headers = [("replayed_from", f"{kafka.topic_dlq}/{d.partition}/{d.offset}".encode())]
            futures.append(producer.send(kafka.topic_raw, key=d.key, value=d.value, headers=headers))
        producer.flush(timeout=60)
        errors = []
        for f in futures:
            try:
                f.get(timeout=60)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(exc)
        if errors:
            raise SendFailed(len(errors), len(futures), errors[0])
        return len(futures)
    finally:
        producer.close(timeout=10)
