"""Publishing NewsItems to the raw topic. The key is the story key (normalised title) so repeats of one story
land on one partition, hence one worker, and duplicate flags are decided without races."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka import KafkaProducer

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


def send_items(producer: KafkaProducer, topic: str, items: Iterable[NewsItem]) -> int:
    n = 0
    for item in items:
        producer.send(topic, key=message_key(item), value=item.to_json())
        n += 1
    return n
