"""Publishing NewsItems to the raw topic. The key is the story key (normalised title) so repeats of one story
land on one partition, hence one worker, and duplicate flags are decided without races."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.kafka import ensure_topics, make_producer, retry_connect
from monitor.schema import NewsItem, story_key
from monitor.settings import Settings

log = logging.getLogger(__name__)


def message_key(item: NewsItem) -> bytes:
    return story_key(item.title).encode("ascii")


def open_producer(settings: Settings) -> KafkaProducer:
    k = settings.kafka
    retry_connect(lambda: ensure_topics(k, {k.topic_raw: k.partitions}), "topic setup", max_wait_s=120)
    return retry_connect(lambda: make_producer(k), "producer", max_wait_s=120)


class SendFailed(KafkaError):
    """Some sends were not acknowledged by the broker (``failed`` of ``total``); the first error is chained."""

    def __init__(self, failed: int, total: int, first: BaseException) -> None:
        super().__init__(f"{failed} of {total} sends failed (first: {type(first).__name__}: {first})")
        self.failed, self.total = failed, total


def send_items(
    producer: KafkaProducer, topic: str, items: Iterable[NewsItem], timeout_s: float = 60.0
) -> int:
    """Send, flush, then check every send's acknowledgement; raises SendFailed unless all were acknowledged
    (a send that is never checked may have failed silently, and its item would be recorded as sent)."""
    futures = []
    errors: list[BaseException] = []
    total = 0
    for item in items:
        total += 1
        try:
            futures.append(producer.send(topic, key=message_key(item), value=item.to_json()))
        except KafkaError as exc:  # refused before sending (too large, metadata unavailable)
            errors.append(exc)
    producer.flush(timeout=timeout_s)
    for f in futures:
        try:
            f.get(timeout=timeout_s)
        except KafkaError as exc:  # not acknowledged: timed out, broker gone, refused
            errors.append(exc)
    if errors:
        raise SendFailed(len(errors), total, errors[0])
    return len(futures)
