"""Thin constructors for kafka-python clients, with retry while the broker is unreachable."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


def backoff_delays(base: float = 0.5, cap: float = 30.0) -> Any:
    """Exponential back-off: 0.5, 1, 2, 4 … capped."""
    delay = base
    while True:
        yield delay
        delay = min(cap, delay * 2)


def retry_connect(
    make: Callable[[], T], what: str, stop: threading.Event | None = None, max_wait_s: float | None = None
) -> T:
    """Call ``make`` until the broker answers. Never crash-loops: waits with back-off, logs each miss."""
    started = time.monotonic()
    for delay in backoff_delays():
        try:
            return make()
        except (KafkaError, OSError) as exc:
            if max_wait_s is not None and time.monotonic() - started > max_wait_s:
                raise
            log.warning(
                "%s: broker not reachable (%s); retrying in %.1fs", what, exc.__class__.__name__, delay
            )
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")


def make_producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    kw: dict[str, Any] = {
        **kafka.client_kwargs(),
        "acks": "all",
        "linger_ms": 20,
        "retries": 10,
        "max_request_size": 4 * 1024 * 1024,
        "request_timeout_ms": 30_000,
    }
    kw.update(overrides)
    return KafkaProducer(**kw)


def make_consumer(kafka: KafkaSettings, *topics: str, **overrides: Any) -> KafkaConsumer:
    kw: dict[str, Any] = {
        **kafka.client_kwargs(),
        "group_id": kafka.group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }
    kw.update(overrides)
    return KafkaConsumer(*topics, **kw)


def ensure_topics(kafka: KafkaSettings, partitions: dict[str, int]) -> None:
    """Create topics that do not exist yet (existing ones are left as they are)."""
    admin = KafkaAdminClient(**kafka.client_kwargs())
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, 1) for name, n in partitions.items() if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", ", ".join(t.name for t in new))
    finally:
        admin.close()
