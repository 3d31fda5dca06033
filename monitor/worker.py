"""The worker: Kafka consumer-group member that classifies micro-batches and stores them.

Delivery: at-least-once from Kafka, effectively exactly-once rows. Per batch: decode (bad messages → DLQ),
classify, write to the database in one transaction (idempotent upsert on item id), publish results to
``news.tagged``, flush the producer, and only then commit the consumed offsets.

Faults (``monitor.faults``): a transient one (database or broker away, the model failing on known-good text)
is retried with back-off, nothing committed past it, and the health file stops advancing; a permanent one
(the database refuses a value, a record too large, anything unforeseen) is isolated by bisecting the batch and
dead-lettering only the record that causes it. Nothing a message can contain stops the process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.batch import (
    MAX_DLQ_VALUE_BYTES,
    MAX_TAGGED_BYTES,
    PROBE_TEXT,
    Decoded,
    RawRecord,
    classify_safely,
    commit_offsets,
    decode_batch,
    derive_max_poll_interval_ms,
    dlq_headers,
    first_offsets,
    link_items,
    tagged_message,
)
from monitor.classify import Classifier
from monitor.consume import SafePoller
from monitor.emerging import emerging_from_settings
from monitor.entities import load_linker
from monitor.faults import ModelOutage, StoreOutage, bisect_failures, describe, is_transient
from monitor.health import Progress
from monitor.kafka import backoff_delays, ensure_topics, make_consumer, make_producer, retry_connect
from monitor.metrics import WorkerMetrics
from monitor.schema import Limits, NewsItem, ParseError, Tags
from monitor.settings import Settings
from monitor.signals import stop_on_signals
from monitor.store import make_engine, upsert_heartbeat, wait_for_database, write_batch

log = logging.getLogger(__name__)


__all__ = [  # the pure pieces live in monitor.batch; re-exported for callers of the worker module
    "MAX_DLQ_VALUE_BYTES", "MAX_TAGGED_BYTES", "PROBE_TEXT", "Decoded", "RawRecord", "Worker", "classify_safely",
    "commit_offsets", "decode_batch", "derive_max_poll_interval_ms", "dlq_headers", "first_offsets",
    "run_worker", "tagged_message",
]  # fmt: skip


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
        w = settings.worker
        self.limits = Limits(
            w.max_message_bytes,
            w.max_title_chars,
            w.max_body_chars,
            w.max_tickers,
            w.earliest_published_at,
            timedelta(hours=w.max_future_hours),
        )
        self.window = timedelta(hours=w.duplicate_window_hours)
        e = settings.entities
        self.linker = load_linker(e.watchlist)  # pure CPU per batch; built once per process
        self.emerging = emerging_from_settings(
            e.provisional_min_stories, e.provisional_window_days, e.provisional
        )
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.pending: list[RawRecord] = []
        self.stats = WorkerStats()
        self.progress = Progress(settings.health.dir, "worker")
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self.poller: SafePoller | None = None
        self._last_heartbeat = 0.0
        self._batch_started: float | None = None

    # -- lifecycle

    def connect(self) -> None:
        k, w = self.settings.kafka, self.settings.worker
        retry_connect(
            lambda: ensure_topics(
                k, {k.topic_raw: k.partitions, k.topic_tagged: k.partitions, k.topic_dlq: 1}
            ),
            "topic setup",
            self.stop,
        )
        self.producer = retry_connect(lambda: make_producer(k), "producer", self.stop)
        self.consumer = retry_connect(
            lambda: make_consumer(
                k,
                max_poll_records=w.batch_size,
                max_poll_interval_ms=derive_max_poll_interval_ms(
                    w.batch_size, w.max_wait_ms, w.seconds_per_item_budget
                ),
            ),
            "consumer",
            self.stop,
        )
        self.consumer.subscribe([k.topic_raw], listener=_Rebalance(self))
        self.poller = SafePoller(self.consumer, self._fault)

    def run(self) -> int:
        """Consume until ``stop`` is set; then finish the batch in hand, commit and leave the group."""
        if not wait_for_database(self.engine, self.stop):
            return 0
        try:
            self.connect()
        except (KafkaError, OSError):
            if self.stop.is_set():
                return 0
            raise
        assert self.consumer is not None
        self.metrics.up.set(1)
        log.info(
            "worker %s consuming %s (batch %d, max wait %d ms, model %s)",
            self.worker_id,
            self.settings.kafka.topic_raw,
            self.settings.worker.batch_size,
            self.settings.worker.max_wait_ms,
            self.classifier.version,
        )
        try:
            delays = backoff_delays(0.5, 30.0)
            while not self.stop.is_set():
                try:
                    self._step()
                    delays = backoff_delays(0.5, 30.0)
                except Exception as exc:  # noqa: BLE001 - the loop itself must never die
                    self._fault(f"loop: {describe(exc)}")
                    log.exception("worker loop error; continuing")
                    self.stop.wait(next(delays))
            self.flush_pending(reason="shutdown")
        finally:
            self.metrics.up.set(0)
            self.close()
        return 0

    def _step(self) -> None:
        """One poll, and the batch it completes, if any."""
        assert self.poller is not None
        w = self.settings.worker
        if not self.pending:  # e.g. flushed by a rebalance inside poll()
            self._batch_started = None
        wait_ms = w.max_wait_ms
        if self._batch_started is not None:
            wait_ms = max(0, int(w.max_wait_ms - (time.monotonic() - self._batch_started) * 1000))
        polled = self.poller.poll(wait_ms, max(1, w.batch_size - len(self.pending)))
        for tp, recs in polled.items():
            for r in recs:
                self.pending.append(RawRecord(tp.topic, tp.partition, r.offset, r.key, r.value))
        self.metrics.paused.set(len(self.poller.quarantine.retry_at))
        if self.pending and self._batch_started is None:
            self._batch_started = time.monotonic()
        started = self._batch_started
        due = started is not None and (time.monotonic() - started) * 1000 >= w.max_wait_ms
        if self.pending and (len(self.pending) >= w.batch_size or due):
            self.flush_pending(reason="batch")
            self._batch_started = None
        elif not self.pending and not polled:
            self.progress.ok("idle")  # caught up: nothing to do is progress too
        self._maybe_heartbeat()

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

    def _fault(self, what: str) -> None:
        self.progress.fault(what)

    # -- one batch

    def flush_pending(self, reason: str) -> None:
        """Process the records in hand. Permanent failures are bisected down to the record that causes them
        (dead-lettered); transient ones are retried with back-off, resuming after the records already done.
        Gives up (rewinding, so the rest is read again) when stopping, when the group has moved on
        (CommitFailedError), or once half of max_poll_interval is spent — polling again is what keeps this
        member in the group."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        w = self.settings.worker
        budget_s = derive_max_poll_interval_ms(w.batch_size, w.max_wait_ms, w.seconds_per_item_budget) / 2000
        if reason == "rebalance":
            budget_s = min(budget_s, 10.0)
        started = time.monotonic()
        done: set[tuple[str, int, int]] = set()

        def attempt(part: Sequence[RawRecord]) -> None:
            self.process(part)
            done.update((r.topic, r.partition, r.offset) for r in part)

        def isolate(rec: RawRecord, exc: BaseException) -> None:
            self.dead_letter_one(rec, f"rejected: {describe(exc)}")
            done.add((rec.topic, rec.partition, rec.offset))

        for delay in backoff_delays(0.5, 30.0):
            todo = [r for r in batch if (r.topic, r.partition, r.offset) not in done]
            try:
                bisect_failures(todo, attempt, isolate)
                self.progress.ok()
                return
            except CommitFailedError as exc:
                log.warning("offset commit rejected (%s): the group rebalanced; records will be re-read", exc)
                self.metrics.errors.labels("commit").inc()
                return
            except Exception as exc:  # noqa: BLE001 - only transient errors get here (bisect isolates the rest)
                stage = _stage_of(exc)
                self.metrics.errors.labels(stage).inc()
                self._fault(f"{stage}: {describe(exc)}")
                log.warning(
                    "batch of %d failed at %s (%s); retrying in %.1fs", len(todo), stage, describe(exc), delay
                )
                if time.monotonic() - started + delay > budget_s or self.stop.wait(delay):
                    self._rewind(todo)  # uncommitted: re-read by us or by the partition's next owner
                    return

    def _rewind(self, batch: Sequence[RawRecord]) -> None:
        if self.consumer is None or not batch:
            return
        for tp, off in first_offsets(batch).items():
            try:
                self.consumer.seek(tp, off)
            except Exception:  # noqa: BLE001 - partition no longer ours: the new owner starts at the commit
                pass

    def process(self, batch: Sequence[RawRecord]) -> None:
        """Decode, classify, store, publish, commit one batch; raises on any failure (sorted by the caller)."""
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
        entities = link_items(self.linker, self.emerging, [item for item, _ in pairs])
        messages = [(item.id.encode(), tagged_message(item, tags, entities[item.id])) for item, tags in pairs]
        with self.engine.begin() as conn:
            result = write_batch(conn, pairs, self.window, entities=entities)
        futures = [self.producer.send(k.topic_tagged, key=key, value=value) for key, value in messages]
        for rec, err in bad:
            futures.append(self._send_dead_letter(rec, err.reason))
        self.producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises KafkaError if a send failed → sorted: retried or isolated
        self._commit(batch)
        self._account(len(batch), len(pairs), len(bad), result.duplicates, time.monotonic() - t0)

    def _commit(self, batch: Sequence[RawRecord]) -> None:
        assert self.consumer is not None
        self.consumer.commit(
            {tp: OffsetAndMetadata(off, "", -1) for tp, off in commit_offsets(batch).items()}
        )

    def _send_dead_letter(self, rec: RawRecord, reason: str, value: bytes | None = None) -> Any:
        assert self.producer is not None
        log.warning("DLQ %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, reason)
        self.metrics.dlq.labels(reason.split(":")[0][:40]).inc()
        headers = dlq_headers(rec, reason)
        if value is not None:
            headers.append(("value_truncated_from", str(len(rec.value or b"")).encode()))
        return self.producer.send(
            self.settings.kafka.topic_dlq,
            key=rec.key,
            value=value if value is not None else (rec.value or b""),
            headers=headers,
        )

    def dead_letter_one(self, rec: RawRecord, reason: str) -> None:
        """A record that fails on its own. First make sure the fault is the record's: if the model or the
        database fails a known-good probe, that is an outage (raised, retried) and nothing is dead-lettered."""
        self._probe()
        assert self.producer is not None
        try:
            self._send_dead_letter(rec, reason).get(timeout=30)
        except KafkaError as exc:
            if is_transient(exc):
                raise
            cut = (rec.value or b"")[:MAX_DLQ_VALUE_BYTES]  # the broker refused the whole value
            self._send_dead_letter(rec, f"{reason} (value cut: {describe(exc, 100)})", cut).get(timeout=30)
        self._commit([rec])
        self.stats.dlq += 1

    def _probe(self) -> None:
        try:
            self.classifier.predict([PROBE_TEXT])
        except Exception as exc:  # noqa: BLE001
            raise ModelOutage(f"the model fails on a known-good text: {describe(exc)}") from exc
        item = NewsItem(
            id="finpulse-probe", title=PROBE_TEXT, source="finpulse", published_at=datetime.now(UTC)
        )
        tags = Tags("Markets", 1.0, "neutral", 0.0, 1.0, "probe")
        try:
            with self.engine.connect() as conn:
                tx = conn.begin()
                try:
                    write_batch(conn, [(item, tags)], self.window)
                finally:
                    tx.rollback()
        except Exception as exc:  # noqa: BLE001 - failing a known-good write is an outage, whatever the cause
            raise StoreOutage(f"the database fails a known-good write: {describe(exc)}") from exc

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


def _stage_of(exc: BaseException) -> str:
    if isinstance(exc, ModelOutage):
        return "model"
    if isinstance(exc, SQLAlchemyError | StoreOutage):
        return "database"
    return "kafka" if isinstance(exc, KafkaError | OSError) else "other"


def run_worker(settings: Settings, classifier: Classifier | None = None) -> int:
    """``finpulse worker``: install signal handlers, wait for the database (before the model load, so a
    database that is down at start costs no model loads), load the model, run until SIGTERM/SIGINT."""
    from monitor.classify import load_classifier

    stop = stop_on_signals("finishing the current batch, committing, leaving the group")
    engine = make_engine(settings.database.url, settings.database.echo)
    Progress(settings.health.dir, "worker").fault("starting: waiting for the database")
    if not wait_for_database(engine, stop):
        return 0
    clf = classifier or load_classifier(settings.model, long_running=True)
    metrics = WorkerMetrics()
    metrics.serve(settings.worker.metrics_port)
    return Worker(settings, clf, engine=engine, metrics=metrics, stop=stop).run()
