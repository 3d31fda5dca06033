"""Pipeline benchmark: the worker end to end vs the model alone (not a test).

Sends N items through the real (embedded) broker into a worker writing to the database (SQLite by default,
PostgreSQL with ``--database-url postgresql+psycopg://...``: a fresh schema per run, dropped after), twice:
  1. with the model replaced by a no-op  → the pipeline's own throughput (items/s);
  2. with a real model                   → throughput and the share of wall time spent outside the model;
then the same classifier object, in-process, on the same headlines in batches of the same size (model-only),
before and after the end-to-end run (mean of the two), and prints end-to-end / model-only.

    .venv/bin/python benchmarks/bench_pipeline.py --items 20000 --model-items 2000 [--model DIR] \
        [--database-url postgresql+psycopg://USER@HOST:PORT/DB]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaProducer

from monitor.broker import embedded_broker
from monitor.classify import Classifier, load_classifier
from monitor.kafka import ensure_topics
from monitor.settings import KafkaSettings, ModelSettings, Settings
from monitor.store import make_engine, news_items
from monitor.worker import Worker


def headlines(n: int) -> list[str]:
    titles: list[str] = []
    archive = Settings().data.root / "news-headlines-2017-2020"  # FINPULSE_DATA_DIR
    for f in sorted(archive.glob("*.csv")) if archive.exists() else []:
        import pandas as pd

        df = pd.read_csv(f)
        col = next((c for c in df.columns if c.lower() in {"headlines", "headline", "title"}), df.columns[0])
        titles += [str(t) for t in df[col].dropna()]
    if not titles:
        titles = [f"Company {i} reports quarterly results" for i in range(1000)]
    return [f"{titles[i % len(titles)]} #{i}" for i in range(n)]


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A database URL for one run: a new SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if url is None or url.startswith("sqlite"):
        yield url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def model_only(clf: Classifier, n: int, batch_size: int) -> float:
    """items/s of ``clf.predict`` alone on the same headlines, in the worker's batch size."""
    titles = headlines(n)
    started = time.perf_counter()
    for i in range(0, n, batch_size):
        clf.predict(titles[i : i + batch_size])
    return n / (time.perf_counter() - started)


def run_once(
    bootstrap: str, n: int, clf: Classifier, batch_size: int, tag: str, db_url: str
) -> dict[str, float]:
    kafka = KafkaSettings(
        bootstrap=bootstrap,
        topic_raw=f"bench-raw-{tag}",
        topic_tagged=f"bench-tagged-{tag}",
        topic_dlq=f"bench-dlq-{tag}",
        group=f"bench-{tag}",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        partitions=4,
    )
    base = Settings()
    settings = base.model_copy(
        update={
            "kafka": kafka,
            "database": base.database.model_copy(update={"url": db_url}),
            "worker": base.worker.model_copy(
                update={"batch_size": batch_size, "max_wait_ms": 200, "metrics_port": 0}
            ),
        }
    )
    ensure_topics(kafka, {kafka.topic_raw: 4})
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for i, title in enumerate(headlines(n)):
        item = {
            "id": f"b{i}",
            "title": title,
            "source": "bench",
            "published_at": (t0 + timedelta(seconds=i)).isoformat(),
        }
        producer.send(kafka.topic_raw, key=str(i).encode(), value=json.dumps(item).encode())
    producer.flush()
    producer.close()
    worker = Worker(settings, clf)
    engine = make_engine(db_url)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    # Clock starts at the first stored batch (excludes the group join).
    while worker.stats.batches == 0:
        time.sleep(0.01)
    start, first_items, model_s0 = (
        time.monotonic(),
        worker.stats.items,
        worker.metrics.model_seconds._value.get(),
    )
    while worker.stats.items < n:
        time.sleep(0.02)
    elapsed = time.monotonic() - start
    model_s = worker.metrics.model_seconds._value.get() - model_s0
    worker.stop.set()
    thread.join(30)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(news_items)).scalar_one()
    assert stored == n, stored
    done = n - first_items
    return {
        "items": done,
        "seconds": elapsed,
        "items_per_s": done / elapsed,
        "model_share": model_s / elapsed,
        "outside_model_share": 1 - model_s / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--model-items", type=int, default=1_000)
    ap.add_argument("--model", default=str(Settings().model.path))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--database-url", help="default: a new SQLite file; postgresql+psycopg://... for PostgreSQL"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = ModelSettings(path=args.model, batch_size=args.batch_size)
    clf = load_classifier(model, long_running=True)  # as `finpulse worker`: the fast path, warmed up
    noop_clf = load_classifier(ModelSettings(kind="noop"))
    db_kind = "SQLite" if not args.database_url or args.database_url.startswith("sqlite") else "PostgreSQL"
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; database {db_kind}")
    with embedded_broker() as broker:
        with database(args.database_url) as url:
            noop = run_once(broker.bootstrap, args.items, noop_clf, args.batch_size, "noop", url)
        print(
            f"no-op model : {noop['items']:.0f} items in {noop['seconds']:.1f}s = "
            f"{noop['items_per_s']:.0f} items/s (broker + decode + {db_kind} upsert + tagged publish + commit)"
        )
        before = model_only(clf, args.model_items, args.batch_size)
        with database(args.database_url) as url:
            real = run_once(broker.bootstrap, args.model_items, clf, args.batch_size, "model", url)
        after = model_only(clf, args.model_items, args.batch_size)
    alone = (before + after) / 2
    print(
        f"model {Path(args.model).name}: {real['items']:.0f} items in {real['seconds']:.1f}s = "
        f"{real['items_per_s']:.1f} items/s end to end; time in model {real['model_share']:.1%}, "
        f"outside the model {real['outside_model_share']:.1%}"
    )
    print(
        f"model only (same classifier, batches of {args.batch_size}): {alone:.1f} items/s "
        f"(before {before:.1f}, after {after:.1f}); end to end = {real['items_per_s'] / alone:.0%} of model-only"
    )
    print(
        json.dumps(
            {"noop": noop, "model": real, "model_only_items_per_s": alone, "model_path": args.model}, indent=1
        )
    )


if __name__ == "__main__":
    main()
