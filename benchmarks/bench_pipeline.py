"""Pipeline overhead benchmark (not a test).

Sends N items through the real (embedded) broker into a worker writing to SQLite, twice:
  1. with the model replaced by a no-op  → the pipeline's own throughput (items/s);
  2. with a real model                   → throughput and the share of wall time spent outside the model.

    .venv/bin/python benchmarks/bench_pipeline.py --items 20000 --model-items 2000 [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaProducer

from monitor.broker import embedded_broker
from monitor.classify import load_classifier
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


def run_once(bootstrap: str, n: int, model: ModelSettings, batch_size: int, tag: str) -> dict[str, float]:
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
    db = Path(tempfile.mkdtemp()) / "bench.db"
    base = Settings()
    settings = base.model_copy(
        update={
            "kafka": kafka,
            "database": base.database.model_copy(update={"url": f"sqlite:///{db}"}),
            "worker": base.worker.model_copy(
                update={"batch_size": batch_size, "max_wait_ms": 200, "metrics_port": 0}
            ),
        }
    )
    clf = load_classifier(model, long_running=True)  # as `finpulse worker`: compiled
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
    engine = make_engine(settings.database.url)
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
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with embedded_broker() as broker:
        noop = run_once(broker.bootstrap, args.items, ModelSettings(kind="noop"), args.batch_size, "noop")
        print(
            f"no-op model : {noop['items']:.0f} items in {noop['seconds']:.1f}s = "
            f"{noop['items_per_s']:.0f} items/s (broker + decode + SQLite upsert + tagged publish + commit)"
        )
        real = run_once(
            broker.bootstrap, args.model_items, ModelSettings(path=args.model), args.batch_size, "model"
        )
        print(
            f"model {Path(args.model).name}: {real['items']:.0f} items in {real['seconds']:.1f}s = "
            f"{real['items_per_s']:.1f} items/s; time in model {real['model_share']:.1%}, "
            f"outside the model {real['outside_model_share']:.1%}"
        )
    print(json.dumps({"noop": noop, "model": real, "model_path": args.model}, indent=1))


if __name__ == "__main__":
    main()
