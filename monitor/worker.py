"""The worker: Kafka consumer-group member that classifies micro-batches and stores them.

Delivery: at-least-once from Kafka, effectively exactly-once rows. Per batch: decode (bad messages → DLQ),
classify, write to the database in one transaction (idempotent upsert on item id), publish results to
``news.tagged``, flush the producer, and only then commit the consumed offsets.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.classify import Classifier
from monitor.kafka import backoff_delays, ensure_topics, make_consumer, make_producer, retry_connect
from monitor.metrics import WorkerMetrics
from monitor.schema import Limits, NewsItem, ParseError, Tags, parse_news
from monitor.settings import Settings
from monitor.store import init_db, make_engine, upsert_heartbeat, write_batch

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- pure helpers


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


def decode_batch(records: Sequence[RawRecord], limits: Limits) -> Decoded:
    good: list[tuple[RawRecord, NewsItem]] = []
    bad: list[tuple[RawRecord, ParseError]] = []
    for rec in records:
        parsed = parse_news(rec.value, limits)
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


def tagged_message(item: NewsItem, tags: Tags) -> bytes:
    payload = item.model_dump(mode="json", exclude={"body"}, exclude_none=True)
    payload.update(tags.as_dict())
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def classify_safely(classifier: Classifier, items: Sequence[NewsItem]) -> list[Tags | ParseError]:
    """Classify a batch; if the batch call fails, retry item by item so one poisonous text goes to the DLQ
    instead of blocking its partition."""
    texts = [i.text for i in items]
    try:
        return list(classifier.predict(texts))
    except Exception as exc:  # noqa: BLE001 - the model is third-party code
        log.warning("batch classification failed (%s); retrying item by item", exc)
    out: list[Tags | ParseError] = []
    for text in texts:
        try:
            out.append(classifier.predict([text])[0])
        except Exception as exc:  # noqa: BLE001
            out.append(ParseError(f"classifier error: {exc.__class__.__name__}: {exc}"[:500]))
    return out


# ---------------------------------------------------------------- the I/O shell


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Finish what we hold for these partitions and commit before another member takes them.
        self.worker.flush_pending(reason="rebalance")

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("assigned partitions: %s", sorted(tp.partition for tp in assigned))


@dataclass
class WorkerStats:
    items: int = 0
    dlq: int = 0
    batches: int = 0
    last_batch_ms: float = 0.0
    ewma_rate: float = 0.0
    lag: int = 0
    started: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        engine: Engine | None = None,
        metrics: WorkerMetrics | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.engine = engine or make_engine(settings.database.url, settings.database.echo)
        self.metrics = metrics or WorkerMetrics()
        self.stop = stop or threading.Event()
        self.limits = Limits(
            settings.worker.max_message_bytes, settings.worker.max_title_chars, settings.worker.max_body_chars
        )
        self.window = timedelta(hours=settings.worker.duplicate_window_hours)
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.pending: list[RawRecord] = []
        self.stats = WorkerStats()
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self._last_heartbeat = 0.0

    # -- lifecycle

    def connect(self) -> None:
        k, w = self.settings.kafka, self.settings.worker
        retry_connect(
            lambda: ensure_topics(k, {k.topic_raw: k.partitions, k.topic_tagged: k.partitions, k.topic_dlq: 1}),
            "topic setup", self.stop,
        )
        self.producer = retry_connect(lambda: make_producer(k), "producer", self.stop)
        self.consumer = retry_connect(
            lambda: make_consumer(
                k,
                max_poll_records=w.batch_size,
                max_poll_interval_ms=derive_max_poll_interval_ms(w.batch_size, w.max_wait_ms,
                                                                 w.seconds_per_item_budget),
            ),
            "consumer", self.stop,
        )
        self.consumer.subscribe([k.topic_raw], listener=_Rebalance(self))

    def run(self) -> int:
        """Consume until ``stop`` is set; then finish the batch in hand, commit and leave the group."""
        init_db(self.engine)
        try:
            self.connect()
        except (KafkaError, OSError):
            if self.stop.is_set():
                return 0
            raise
        assert self.consumer is not None
        self.metrics.up.set(1)
        log.info("worker %s consuming %s (batch %d, max wait %d ms, model %s)", self.worker_id,
                 self.settings.kafka.topic_raw, self.settings.worker.batch_size,
                 self.settings.worker.max_wait_ms, self.classifier.version)
        batch_started: float | None = None
        w = self.settings.worker
        try:
            while not self.stop.is_set():
                if not self.pending:  # e.g. flushed by a rebalance inside poll()
                    batch_started = None
                wait_ms = w.max_wait_ms
                if batch_started is not None:
                    wait_ms = max(0, int(w.max_wait_ms - (time.monotonic() - batch_started) * 1000))
                want = max(1, w.batch_size - len(self.pending))
                polled = self.consumer.poll(timeout_ms=wait_ms, max_records=want)
                for tp, recs in polled.items():
                    for r in recs:
                        self.pending.append(RawRecord(tp.topic, tp.partition, r.offset, r.key, r.value))
                if self.pending and batch_started is None:
                    batch_started = time.monotonic()
                due = batch_started is not None and (time.monotonic() - batch_started) * 1000 >= w.max_wait_ms
                if self.pending and (len(self.pending) >= w.batch_size or due):
                    self.flush_pending(reason="batch")
                    batch_started = None
                self._maybe_heartbeat()
            self.flush_pending(reason="shutdown")
        finally:
            self.metrics.up.set(0)
            self.close()
        return 0

    def close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close(autocommit=False)  # leaves the group
            except Exception as exc:  # noqa: BLE001
                log.warning("consumer close: %s", exc)
            self.consumer = None
        if self.producer is not None:
            try:
                self.producer.close(timeout=10)
            except Exception as exc:  # noqa: BLE001
                log.warning("producer close: %s", exc)
            self.producer = None

    # -- one batch

    def flush_pending(self, reason: str) -> None:
        """Process the records in hand, retrying transient failures with back-off. Gives up (rewinding, so the
        records are read again) when stopping, when the group has moved on (CommitFailedError), or once half
        of max_poll_interval is spent — polling again is what keeps this member in the group."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        w = self.settings.worker
        budget_s = derive_max_poll_interval_ms(w.batch_size, w.max_wait_ms, w.seconds_per_item_budget) / 2000
        if reason == "rebalance":
            budget_s = min(budget_s, 10.0)
        started = time.monotonic()
        for delay in backoff_delays(0.5, 10.0):
            try:
                self.process(batch)
                return
            except CommitFailedError as exc:
                log.warning("offset commit rejected (%s): the group rebalanced; records will be re-read", exc)
                self.metrics.errors.labels("commit").inc()
                return
            except (SQLAlchemyError, KafkaError, OSError) as exc:
                stage = "database" if isinstance(exc, SQLAlchemyError) else "kafka"
                self.metrics.errors.labels(stage).inc()
                log.warning("batch of %d failed at %s (%s: %s); retrying in %.1fs", len(batch), stage,
                            exc.__class__.__name__, str(exc)[:200], delay)
                if time.monotonic() - started + delay > budget_s or self.stop.wait(delay):
                    self._rewind(batch)  # uncommitted: re-read by us or by the partition's next owner
                    return

    def _rewind(self, batch: Sequence[RawRecord]) -> None:
        if self.consumer is None:
            return
        for tp, off in first_offsets(batch).items():
            try:
                self.consumer.seek(tp, off)
            except Exception:  # noqa: BLE001 - partition no longer ours: the new owner starts at the commit
                pass

    def process(self, batch: Sequence[RawRecord]) -> None:
        assert self.consumer is not None and self.producer is not None
        k = self.settings.kafka
        t0 = time.monotonic()
        decoded = decode_batch(batch, self.limits)
        items = [item for _, item in decoded.good]
        tm = time.monotonic()
        results = classify_safely(self.classifier, items) if items else []
        self.metrics.model_seconds.inc(time.monotonic() - tm)
        pairs: list[tuple[NewsItem, Tags]] = []
        bad = list(decoded.bad)
        for (rec, item), res in zip(decoded.good, results, strict=True):
            if isinstance(res, ParseError):
                bad.append((rec, res))
            else:
                pairs.append((item, res))
        with self.engine.begin() as conn:
            result = write_batch(conn, pairs, self.window)
        futures = []
        for item, tags in pairs:
            futures.append(self.producer.send(k.topic_tagged, key=item.id.encode(), value=tagged_message(item, tags)))
        for rec, err in bad:
            log.warning("DLQ %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, err.reason)
            futures.append(self.producer.send(k.topic_dlq, key=rec.key, value=rec.value or b"",
                                              headers=dlq_headers(rec, err.reason)))
            self.metrics.dlq.labels(err.reason.split(":")[0][:40]).inc()
        self.producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises KafkaError if a send failed → batch retried, offsets not committed
        self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in commit_offsets(batch).items()})
        elapsed = time.monotonic() - t0
        self._account(len(batch), len(pairs), len(bad), result.duplicates, elapsed)

    def _account(self, n: int, stored: int, bad: int, dups: int, elapsed: float) -> None:
        m, s = self.metrics, self.stats
        m.items.inc(stored)
        m.duplicates.inc(dups)
        m.batches.inc()
        m.batch_size.observe(n)
        m.batch_latency.observe(elapsed)
        s.items += stored
        s.dlq += bad
        s.batches += 1
        s.last_batch_ms = elapsed * 1000
        rate = n / elapsed if elapsed > 0 else 0.0
        s.ewma_rate = rate if s.batches == 1 else 0.8 * s.ewma_rate + 0.2 * rate
        m.items_per_second.set(s.ewma_rate)
        self._update_lag()
        log.debug("batch %d: %d msgs, %d stored, %d dlq, %.0f ms", s.batches, n, stored, bad, elapsed * 1000)

    def _update_lag(self) -> None:
        if self.consumer is None:
            return
        total = 0
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)  # Tansu's end_offsets can be short; highwater is exact
            if hw is None:
                continue
            try:
                pos = self.consumer.position(tp, timeout_ms=100)
            except Exception:  # noqa: BLE001
                continue
            lag = max(0, hw - (pos or 0))
            self.metrics.lag.labels(str(tp.partition)).set(lag)
            total += lag
        self.stats.lag = total
        self.metrics.lag_total.set(total)

    def _maybe_heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat < 5:
            return
        self._last_heartbeat = now
        row = {
            "worker_id": self.worker_id,
            "updated_at": datetime.now(UTC),
            "model_version": self.classifier.version,
            "items_total": self.stats.items,
            "dlq_total": self.stats.dlq,
            "items_per_second": self.stats.ewma_rate,
            "lag": self.stats.lag,
            "last_batch_ms": self.stats.last_batch_ms,
        }
        try:
            with self.engine.begin() as conn:
                upsert_heartbeat(conn, row)
        except SQLAlchemyError as exc:
            log.warning("heartbeat not stored: %s", exc.__class__.__name__)


def run_worker(settings: Settings, classifier: Classifier | None = None) -> int:
    """``finpulse worker``: install signal handlers, load the model, run until SIGTERM/SIGINT."""
    from monitor.classify import load_classifier

    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch, committing, leaving the group", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    clf = classifier or load_classifier(settings.model, long_running=True)
    metrics = WorkerMetrics()
    metrics.serve(settings.worker.metrics_port)
    return Worker(settings, clf, metrics=metrics, stop=stop).run()
