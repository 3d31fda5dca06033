"""Polling that survives what the fetch path can raise.

kafka-python decodes record batches inside ``poll()``: a batch it cannot read (a codec whose library is
missing, a corrupt batch from a foreign producer) raises there — and kafka-python 3.0 then spins forever in
the next poll on the half-read batch. ``SafePoller`` turns that into a logged, retried fault: it drops the
half-read batch, pauses its partition (the others keep flowing) and tries it again later with back-off
(1 s → 60 s). Nothing is skipped: the paused partition resumes at the same offset once it can be read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from monitor.faults import describe

log = logging.getLogger(__name__)
Polled = dict[TopicPartition, list[Any]]


@dataclass
class Quarantine:
    """Partitions paused because fetching them fails: when each may be tried again, and the current delay."""

    retry_at: dict[TopicPartition, float] = field(default_factory=dict)
    delay: dict[TopicPartition, float] = field(default_factory=dict)
    reason: dict[TopicPartition, str] = field(default_factory=dict)

    def add(self, tp: TopicPartition, reason: str, now: float, base: float = 1.0, cap: float = 60.0) -> float:
        d = min(cap, self.delay.get(tp, base / 2) * 2)
        self.delay[tp], self.retry_at[tp], self.reason[tp] = d, now + d, reason
        return d

    def due(self, now: float) -> list[TopicPartition]:
        return [tp for tp, at in self.retry_at.items() if at <= now]

    def release(self, tp: TopicPartition) -> None:
        """Tried again: unpaused, but the delay is kept so a partition that fails again waits longer."""
        self.retry_at.pop(tp, None)

    def clear(self, tp: TopicPartition) -> None:
        for d in (self.retry_at, self.delay, self.reason):
            d.pop(tp, None)


class SafePoller:
    def __init__(
        self,
        consumer: KafkaConsumer,
        on_fault: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.on_fault = on_fault
        self.clock = clock
        self.quarantine = Quarantine()
        self._blind_delay = 0.5

    def poll(self, timeout_ms: int, max_records: int) -> Polled:
        """``consumer.poll`` that never raises; a failing partition is paused and retried later."""
        self._release_due()
        try:
            polled: Polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:  # noqa: BLE001 - any fetch/decode failure is a fault to isolate, not an exit
            return self._isolate(exc)
        self._blind_delay = 0.5
        for tp in polled:
            self.quarantine.clear(tp)  # it delivered records again
        return polled

    def _release_due(self) -> None:
        for tp in self.quarantine.due(self.clock()):
            self.quarantine.release(tp)
            if tp in self.consumer.assignment():
                log.info("retrying paused partition %s[%d]", tp.topic, tp.partition)
                self.consumer.resume(tp)

    def _isolate(self, exc: Exception) -> Polled:
        reason = describe(exc)
        self.on_fault(f"poll: {reason}")
        tp = discard_broken_fetch(self.consumer)
        if tp is None:  # not tied to one partition: back off the whole poll
            log.warning("poll failed (%s); retrying in %.1f s", reason, self._blind_delay)
            time.sleep(self._blind_delay)
            self._blind_delay = min(30.0, self._blind_delay * 2)
            return {}
        self.consumer.pause(tp)
        wait = self.quarantine.add(tp, reason, self.clock())
        log.error(
            "partition %s[%d] paused for %.0f s: its records cannot be read (%s); nothing is skipped, it "
            "resumes at the same offset",
            tp.topic,
            tp.partition,
            wait,
            reason,
        )
        return {}


def discard_broken_fetch(consumer: KafkaConsumer) -> TopicPartition | None:
    """The partition whose half-read batch made ``poll()`` raise, after dropping that batch.

    kafka-python 3.0 keeps the failed batch "in line" with an exhausted iterator, and every later poll spins
    on it forever (``take()`` returns nothing, nothing drains it). Draining it makes the fetcher fetch the same
    offset again later. Reaches into the fetcher's private state, checked attribute by attribute."""
    fetcher = getattr(consumer, "_fetcher", None)
    part = getattr(fetcher, "_next_partition_records", None)
    if fetcher is None or part is None:
        return None
    tp = getattr(part, "topic_partition", None)
    try:
        part.drain()
    finally:
        fetcher._next_partition_records = None
        fetcher._next_in_line_exception_metadata = None
    return tp if isinstance(tp, TopicPartition) else None
