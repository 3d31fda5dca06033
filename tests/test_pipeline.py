"""End to end on real parts: Tansu broker, worker (tiny random GPT, real forward pass), SQLite / PostgreSQL."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import prometheus_client
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer

from monitor.broker import free_port, start_broker
from monitor.classify import load_classifier
from monitor.kafka import ensure_topics
from monitor.settings import KafkaSettings, ModelSettings, Settings
from monitor.store import make_engine, news_items, tagged_news
from monitor.worker import Worker
from tests.conftest import FINPULSE, REPO, env_for, run_cli, settings_for

pytestmark = pytest.mark.broker
T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)
_CLF = None


def classifier():  # type: ignore[no-untyped-def]
    global _CLF
    if _CLF is None:
        _CLF = load_classifier(ModelSettings(kind="tiny-random"))
    return _CLF


def news(n: int, prefix: str = "item") -> list[dict[str, str]]:
    return [
        {
            "id": f"{prefix}-{i}",
            "title": f"Company {i} reports results number {i}",
            "source": "test",
            "published_at": (T0 + timedelta(seconds=i)).isoformat(),
        }
        for i in range(n)
    ]


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def stored_ids(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("news_items"):
                return []
            return list(conn.execute(sa.select(tagged_news.c.id)).scalars())
    finally:
        engine.dispose()


def read_topic(kafka: KafkaSettings, topic: str, expect: int, timeout: float = 30) -> list:  # type: ignore[type-arg]
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    out: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            out.extend(consumer)
    finally:
        consumer.close()
    return out


@contextmanager
def worker_thread(settings: Settings) -> Iterator[Worker]:
    worker = Worker(settings, classifier())
    t = threading.Thread(target=worker.run, name="worker", daemon=True)
    t.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        t.join(60)
        assert not t.is_alive(), "worker did not stop"


def produce(
    kafka: KafkaSettings, values: list[bytes], key: Callable[[int], bytes | None] = lambda i: None
) -> None:
    ensure_topics(kafka, {kafka.topic_raw: kafka.partitions})
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5, max_request_size=4 << 20)
    for i, v in enumerate(values):
        producer.send(kafka.topic_raw, key=key(i), value=v)
    producer.flush()
    producer.close()


def test_replay_cli_to_database_and_tagged_topic(kafka: KafkaSettings, db_url: str, tmp_path: Path) -> None:
    rows = news(120)
    rows[5]["title"] = rows[4]["title"].upper() + "!"  # a repeated story from the same feed
    src = tmp_path / "news.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))  # replay sorts by time
    done = run_cli(["ingest", "replay", str(src), "--speed", "0", "--no-progress"], env_for(kafka, db_url))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["sent"] == 120
    with worker_thread(settings_for(kafka, db_url)) as worker:
        wait_for(lambda: len(stored_ids(db_url)) == 120, 90, "120 stored items")
        tagged = read_topic(kafka, kafka.topic_tagged, 120)
        assert worker.stats.dlq == 0
    assert sorted(stored_ids(db_url)) == sorted(r["id"] for r in rows)
    assert len({m.key for m in tagged}) == 120
    payload = json.loads(tagged[0].value)
    assert {"id", "title", "topic", "sentiment", "sentiment_score", "model_version"} <= payload.keys()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        dups = conn.execute(sa.select(news_items.c.id).where(news_items.c.is_duplicate)).scalars().all()
    assert dups == ["item-5"]


def test_malformed_messages_go_to_the_dlq_and_the_worker_keeps_running(
    kafka: KafkaSettings, sqlite_url: str
) -> None:
    good = [json.dumps(r).encode() for r in news(40, "good")]
    bad = {
        b"this is not json": "not JSON",
        json.dumps(
            {"title": 123, "source": "s", "published_at": T0.isoformat()}
        ).encode(): "invalid field title",
        json.dumps({"source": "s", "published_at": T0.isoformat()}).encode(): "invalid field title",
        json.dumps(
            {"title": "big", "source": "s", "published_at": T0.isoformat(), "body": "x" * (2 << 20)}
        ).encode(): "message too large",
        b'{"title": "caf\xe9", "source": "s"}': "invalid UTF-8",
        json.dumps(
            {"title": "no zone", "source": "s", "published_at": "2024-01-01T00:00:00"}
        ).encode(): "timezone",
        b"[]": "not a JSON object",
    }
    values = good[:20] + list(bad) + good[20:]
    with worker_thread(settings_for(kafka, sqlite_url, max_message_bytes=1_000_000)) as worker:
        produce(kafka, values)
        wait_for(lambda: len(stored_ids(sqlite_url)) == 40, 90, "40 good items stored")
        dlq = read_topic(kafka, kafka.topic_dlq, len(bad))
        more = [json.dumps(r).encode() for r in news(5, "after")]
        produce(kafka, more)
        wait_for(lambda: len(stored_ids(sqlite_url)) == 45, 60, "items after the bad ones")
        assert worker.stats.dlq == len(bad)

        def metrics_text() -> str:
            return prometheus_client.generate_latest(worker.metrics.registry).decode()

        # The rows commit before the batch is counted: wait for the counters, not only the table.
        wait_for(
            lambda: (
                "finpulse_items_total 45.0" in metrics_text()
                and "finpulse_consumer_lag_total 0.0" in metrics_text()
            ),
            30,
            "metrics caught up",
        )
        metrics = metrics_text()
        assert sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("finpulse_dlq_total{")
        ) == len(bad)
        assert "finpulse_consumer_lag_total 0.0" in metrics and "finpulse_batch_seconds_count" in metrics
    assert len(dlq) == len(bad)
    for msg in dlq:
        headers = {k: v.decode() for k, v in msg.headers}
        assert headers["source_topic"] == kafka.topic_raw
        assert int(headers["source_offset"]) >= 0 and "source_partition" in headers
        assert bad[msg.value] in headers["reason"], (headers["reason"], msg.value[:60])


def test_sigkilled_worker_loses_and_duplicates_nothing(
    kafka: KafkaSettings, sqlite_url: str, tmp_path: Path
) -> None:
    """A producer sends while the worker is SIGKILLed three times and restarted: every id stored once.

    The producer keeps sending (25 items/s) until the kills are over, then 100 more, so every restarted worker
    has new records to make progress on however fast the machine is (a fixed-size stream could be drained
    before the third start, leaving nothing to wait for)."""
    cap = 5000
    rows = [json.dumps(r).encode() for r in news(cap, "k")]
    env = env_for(kafka, sqlite_url, FINPULSE_WORKER_BATCH_SIZE="16", FINPULSE_WORKER_MAX_WAIT_MS="100")
    ensure_topics(kafka, {kafka.topic_raw: kafka.partitions})

    kills_done = threading.Event()
    sent = [0]

    def send_slowly() -> None:
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, linger_ms=5, max_request_size=4 << 20)
        after_kills = None
        for i, v in enumerate(rows):
            if after_kills is None and kills_done.is_set():
                after_kills = i + 100
            if after_kills is not None and i >= after_kills:
                break
            producer.send(kafka.topic_raw, key=str(i).encode(), value=v)
            sent[0] = i + 1
            if i % 10 == 0:
                producer.flush()
                time.sleep(0.4)
        producer.flush()
        producer.close()

    sender = threading.Thread(target=send_slowly)
    sender.start()
    rng = random.Random(5)
    kills = 0
    for _ in range(3):
        log = (tmp_path / f"worker-{kills}.log").open("w")
        proc = subprocess.Popen([*FINPULSE, "worker"], env=env, cwd=REPO, stdout=log, stderr=log)
        before = len(stored_ids(sqlite_url))
        try:
            wait_for(lambda b=before: len(stored_ids(sqlite_url)) > b, 90, "progress before the kill")
        except AssertionError:
            proc.kill()
            raise AssertionError((tmp_path / f"worker-{kills}.log").read_text()[-3000:]) from None
        time.sleep(rng.uniform(0.5, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert sender.is_alive() and len(stored_ids(sqlite_url)) < cap  # really mid-stream
    kills_done.set()
    sender.join()
    total = sent[0]
    proc = subprocess.Popen(
        [*FINPULSE, "worker"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: len(stored_ids(sqlite_url)) >= total, 180, "all items after restarts")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    ids = stored_ids(sqlite_url)
    assert kills == 3
    assert len(ids) == total and len(set(ids)) == total
    assert set(ids) == {f"k-{i}" for i in range(total)}
    assert proc.returncode == 0, err[-2000:]


def test_two_workers_split_the_partitions_and_a_mid_stream_join_loses_nothing(
    kafka: KafkaSettings, sqlite_url: str
) -> None:
    """A second member joins while the first is busy: the first commits what it holds on revoke, the
    partitions are split, and every item is stored exactly once."""
    first = [json.dumps(r).encode() for r in news(300, "s")]
    second = [json.dumps(r).encode() for r in news(300, "u")]
    s = settings_for(kafka, sqlite_url, batch_size=8, max_wait_ms=50)
    with worker_thread(s) as w1:
        produce(kafka, first, key=lambda i: str(i).encode())
        wait_for(lambda: len(stored_ids(sqlite_url)) > 20, 60, "first worker under way")
        with worker_thread(s) as w2:
            wait_for(lambda: bool(w2.consumer and w2.consumer.assignment()), 60, "second worker assigned")
            produce(kafka, second, key=lambda i: str(i).encode())
            wait_for(lambda: len(stored_ids(sqlite_url)) == 600, 90, "600 items")
            assert w1.stats.items > 0 and w2.stats.items > 0, (w1.stats.items, w2.stats.items)
            assert len(w1.consumer.assignment()) + len(w2.consumer.assignment()) == kafka.partitions
    ids = stored_ids(sqlite_url)
    assert len(ids) == len(set(ids)) == 600


def test_worker_waits_for_a_broker_that_is_down_at_start(sqlite_url: str) -> None:
    port = free_port()
    kafka = KafkaSettings(
        bootstrap=f"127.0.0.1:{port}",
        topic_raw="late-raw",
        topic_tagged="late-tagged",
        topic_dlq="late-dlq",
        group="late",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        partitions=2,
    )
    with worker_thread(settings_for(kafka, sqlite_url)) as worker:
        time.sleep(3)  # worker is retrying with back-off, not crashing
        broker = start_broker(port)
        try:
            produce(kafka, [json.dumps(r).encode() for r in news(10, "late")])
            wait_for(lambda: len(stored_ids(sqlite_url)) == 10, 120, "items once the broker is up")
            # the batch is counted after its commit: wait for the counter too
            wait_for(lambda: worker.stats.items == 10, 30, "the worker counted the 10 items")
        finally:
            worker.stop.set()
            time.sleep(1)
            broker.stop()


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(kafka: KafkaSettings, sqlite_url: str) -> None:
    env = env_for(kafka, sqlite_url)
    produce(kafka, [json.dumps(r).encode() for r in news(50, "t")])
    proc = subprocess.Popen(
        [*FINPULSE, "worker"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: len(stored_ids(sqlite_url)) == 50, 90, "50 items")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    # Offsets were committed: the group has nothing left to read.
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=kafka.group, enable_auto_commit=False
    )
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(kafka.topic_raw) or set()
    committed = sum(consumer.committed(TopicPartition(kafka.topic_raw, p)) or 0 for p in parts)
    consumer.close()
    assert committed == 50
