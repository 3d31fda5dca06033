"""Chaos suite on real parts: a hostile producer, a foreign Kafka client (librdkafka, every codec), a model that
fails on everything, a database that refuses rows, PostgreSQL absent at start and stopped for 30 s mid-stream.
After each: every good item stored exactly once, every bad one in the DLQ with its reason, the process alive."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kafka.codec as kafka_codec
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from monitor.classify import Classifier
from monitor.health import judge
from monitor.kafka import ensure_topics
from monitor.schema import Tags
from monitor.settings import KafkaSettings
from monitor.store import init_db, make_engine
from tests.conftest import FINPULSE, REPO, env_for, settings_for
from tests.test_pipeline import classifier, produce, read_topic, stored_ids, wait_for, worker_thread
from tests.test_poison import HOSTILE

pytestmark = pytest.mark.broker
NOW = datetime.now(UTC).replace(microsecond=0)


def good(n: int, prefix: str) -> list[dict[str, str]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "title": f"{prefix} company {i} reports quarterly results",
            "source": "chaos",
            "published_at": (NOW - timedelta(minutes=i)).isoformat(),
        }
        for i in range(n)
    ]


def encode(rows: list[dict[str, str]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in rows]


def dlq_reasons(kafka: KafkaSettings, expect: int) -> dict[int, str]:
    """Reason of each dead letter, keyed by partition * 10**6 + offset of its source record (so a record
    dead-lettered twice, which at-least-once allows, counts once)."""
    out: dict[int, str] = {}
    for m in read_topic(kafka, kafka.topic_dlq, expect, timeout=60):
        h = {k: v.decode() for k, v in m.headers}
        out[int(h["source_partition"]) * 1_000_000 + int(h["source_offset"])] = h["reason"]
    return out


def committed_total(kafka: KafkaSettings) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=kafka.group, enable_auto_commit=False
    )
    try:
        parts = consumer.partitions_for_topic(kafka.topic_raw) or set()
        return sum(consumer.committed(TopicPartition(kafka.topic_raw, p)) or 0 for p in parts)
    finally:
        consumer.close()


@pytest.mark.postgres
def test_hostile_producer_on_postgresql(kafka: KafkaSettings, pg_url: str, tmp_path: Path) -> None:
    """200 good items mixed with every hostile message of test_poison plus rows PostgreSQL itself refuses (a
    CHECK constraint stands in for any data error the edge does not know): good ones stored once, bad ones in
    the DLQ with their reason, the worker alive and still consuming."""
    engine = make_engine(pg_url)
    init_db(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("ALTER TABLE news_items ADD CONSTRAINT no_embargo CHECK (title NOT LIKE '%EMBARGO%')")
        )
    rows = good(200, "g")
    refused = [
        json.dumps({**r, "id": f"refused-{i}", "title": f"EMBARGO story {i}"}).encode()
        for i, r in enumerate(rows[:3])
    ]
    same_id = json.dumps({**rows[0], "title": "Different content, same id", "tickers": ["ZZZ"]}).encode()
    hostile = [v for v, _ in HOSTILE.values()] + refused
    values = encode(rows[:100]) + hostile + encode(rows[100:])
    s = settings_for(kafka, pg_url, batch_size=32, max_wait_ms=200)
    s = s.with_overrides(health={"dir": str(tmp_path / "health")})
    with worker_thread(s) as worker:
        produce(kafka, values, key=lambda i: str(i % 7).encode())
        wait_for(lambda: len(stored_ids(pg_url)) == 200, 120, "200 good items")
        reasons = dlq_reasons(kafka, len(hostile))
        produce(kafka, encode(good(5, "after")) + [same_id])
        wait_for(lambda: len(stored_ids(pg_url)) == 205, 60, "items after the hostile ones")
        assert worker.stats.dlq == len(hostile)
        assert judge(tmp_path / "health" / "worker.json", 30, time.time()).healthy
    ids = stored_ids(pg_url)
    assert len(ids) == len(set(ids)) == 205
    assert len(reasons) == len(hostile), sorted(reasons.values())
    texts = sorted(reasons.values())
    assert sum("rejected: IntegrityError(CheckViolation)" in r for r in texts) == 3, texts
    for _, reason in HOSTILE.values():
        assert any(reason in r for r in texts), reason
    with engine.connect() as conn:
        title = conn.execute(sa.text("SELECT title FROM news_items WHERE id = 'g-0'")).scalar_one()
    assert title == rows[0]["title"]  # first writer wins


class Switchable:
    """The real tiny model, with a switch that makes every call fail as a GPU out of memory does."""

    def __init__(self, inner: Classifier) -> None:
        self.inner, self.version, self.broken = inner, inner.version, threading.Event()

    def predict(self, texts: list[str]) -> list[Tags]:
        if self.broken.is_set():
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return self.inner.predict(texts)


def test_systemic_model_failure_is_an_outage_not_a_dead_letter_storm(
    kafka: KafkaSettings, sqlite_url: str, tmp_path: Path
) -> None:
    from monitor.worker import Worker

    model = Switchable(classifier())
    model.broken.set()
    s = settings_for(kafka, sqlite_url, batch_size=8, max_wait_ms=100)
    s = s.with_overrides(health={"dir": str(tmp_path / "health")})
    worker = Worker(s, model)  # type: ignore[arg-type]
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        produce(kafka, encode(good(30, "m")), key=lambda i: str(i).encode())
        wait_for(lambda: worker.metrics.errors.labels("model")._value.get() >= 3, 90, "the outage to be seen")
        time.sleep(3)
        verdict = judge(tmp_path / "health" / "worker.json", 2, time.time())
        assert not verdict.healthy and "model" in verdict.message, verdict.message
        assert worker.stats.dlq == 0 and stored_ids(sqlite_url) == [] and committed_total(kafka) == 0
        assert t.is_alive()
        model.broken.clear()  # the GPU is back
        wait_for(lambda: len(stored_ids(sqlite_url)) == 30, 120, "all items once the model works")
        assert worker.stats.dlq == 0
        wait_for(lambda: judge(tmp_path / "health" / "worker.json", 5, time.time()).healthy, 30, "healthy")
    finally:
        worker.stop.set()
        t.join(60)
    assert committed_total(kafka) == 30


def confluent_produce(
    kafka: KafkaSettings,
    codec: str,
    rows: list[dict[str, str]],
    partition: int | None = None,
) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "compression.type": codec,
            "linger.ms": 50,
            "api.version.request": True,
        }
    )
    keys: list[bytes | str | None] = [None, b"\x00\xff\xfe binary", "plain-text-key", "ключ"]
    for i, r in enumerate(rows):
        extra = {"partition": partition} if partition is not None else {}
        producer.produce(
            kafka.topic_raw,
            value=json.dumps(r).encode(),
            key=keys[i % len(keys)],
            headers=[("trace-id", f"t-{i}".encode()), ("empty", None), ("bin", b"\x00\x01")],
            **extra,
        )
    assert producer.flush(30) == 0


def test_foreign_librdkafka_producer_with_every_codec(kafka: KafkaSettings, sqlite_url: str) -> None:
    ensure_topics(kafka, {kafka.topic_raw: kafka.partitions})
    expected: list[str] = []
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        rows = good(12, f"c-{codec}")
        confluent_produce(kafka, codec, rows)
        expected += [r["id"] for r in rows]
    with worker_thread(settings_for(kafka, sqlite_url)) as worker:
        wait_for(lambda: len(stored_ids(sqlite_url)) == len(expected), 90, "every codec's items")
        assert worker.stats.dlq == 0
    assert sorted(stored_ids(sqlite_url)) == sorted(expected)


def test_a_partition_that_cannot_be_fetched_is_paused_not_fatal(
    kafka: KafkaSettings, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original fault: zstd batches without the zstd library raise out of poll(). The worker pauses that
    partition, keeps consuming the others, and reads it once the codec is back."""
    ensure_topics(kafka, {kafka.topic_raw: kafka.partitions})
    monkeypatch.setattr(kafka_codec, "has_zstd", lambda: False)
    confluent_produce(kafka, "zstd", good(10, "z"), partition=0)
    others = good(30, "o")
    for p in (1, 2, 3):
        confluent_produce(kafka, "gzip", others[(p - 1) * 10 : p * 10], partition=p)
    with worker_thread(settings_for(kafka, sqlite_url)) as worker:
        wait_for(lambda: len(stored_ids(sqlite_url)) == 30, 90, "the readable partitions")
        wait_for(lambda: worker.metrics.paused._value.get() >= 1, 30, "the unreadable partition paused")
        assert not any(i.startswith("z-") for i in stored_ids(sqlite_url))
        monkeypatch.setattr(kafka_codec, "has_zstd", lambda: True)  # the library is installed
        wait_for(lambda: len(stored_ids(sqlite_url)) == 40, 120, "the paused partition after the fix")
        assert worker.stats.dlq == 0


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[object]:
    from tests.private_pg import PrivatePostgres

    server = PrivatePostgres(tmp_path / "pg")
    yield server
    server.close()


def healthcheck(env: dict[str, str], max_age: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FINPULSE, "healthcheck", "worker", "--max-age", str(max_age)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_postgresql_absent_at_start_then_stopped_30s_mid_stream(
    kafka: KafkaSettings, private_pg: object, tmp_path: Path
) -> None:
    from tests.private_pg import PrivatePostgres

    pg = private_pg
    assert isinstance(pg, PrivatePostgres)
    env = env_for(
        kafka,
        pg.url,
        FINPULSE_HEALTH_DIR=str(tmp_path / "health"),
        FINPULSE_WORKER_BATCH_SIZE="16",
        FINPULSE_WORKER_MAX_WAIT_MS="100",
    )
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen([*FINPULSE, "worker"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    rows = good(400, "pg")
    try:
        time.sleep(8)  # PostgreSQL is not there: the worker waits (no crash, no model load)
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
        assert healthcheck(env, 30).returncode == 1
        assert "not ready" in (tmp_path / "worker.log").read_text()
        pg.start()
        produce(kafka, encode(rows[:200]), key=lambda i: str(i).encode())
        wait_for(lambda: len(stored_ids(pg.url)) >= 50, 120, "progress once PostgreSQL is up")
        pg.stop()  # mid-stream
        produce(kafka, encode(rows[200:]), key=lambda i: str(i).encode())
        time.sleep(30)
        assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        sick = healthcheck(env, 15)
        assert sick.returncode == 1 and "database" in sick.stderr, sick.stderr
        pg.start()
        wait_for(lambda: len(stored_ids(pg.url)) == 400, 180, "every item after the restart")
        wait_for(lambda: healthcheck(env, 15).returncode == 0, 60, "healthy again")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    ids = stored_ids(pg.url)
    assert len(ids) == len(set(ids)) == 400
    assert proc.returncode == 0, (tmp_path / "worker.log").read_text()[-3000:]
    assert read_topic(kafka, kafka.topic_dlq, 1, timeout=3) == []
