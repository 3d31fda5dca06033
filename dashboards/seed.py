"""Synthetic data for demos, screenshots and tests: realistic-looking tagged headlines, tickers, alerts and
worker heartbeats, bulk-inserted with executemany (200k items in seconds on SQLite).

``python -m dashboards.seed sqlite:///./data/demo.db --items 5000`` fills a demo database.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from monitor.labels import TOPICS
from monitor.schema import NewsItem, Tags, story_key
from monitor.store import (
    alerts,
    init_db,
    make_engine,
    news_items,
    news_tags,
    news_tickers,
    worker_heartbeats,
    write_batch,
)

SOURCES = ("Reuters", "Bloomberg", "MarketWatch", "CNBC", "Financial Times", "Seeking Alpha")
TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "JPM", "XOM", "GS", "META", "NFLX", "BA", "KO")
MODEL_VERSION = "demo-smollm2-lora-1"
_NEGATIVE = ("slumps", "misses forecasts", "faces probe", "cuts outlook", "plunges", "warns on demand")
_NEUTRAL = ("to report results", "holds steady", "announces meeting", "reshuffles board", "trades flat")
_POSITIVE = ("beats estimates", "surges", "raises guidance", "wins approval", "rallies", "lifts dividend")
# A negative burst in this topic during the last hour, with a matching alert: makes the Overview interesting.
SPIKE_TOPIC = "Energy | Oil"


@dataclass(frozen=True, slots=True)
class SeedCounts:
    items: int
    tickers: int
    alerts: int


def _sentiment(rng: random.Random, negative_p: float) -> tuple[str, float]:
    roll = rng.random()
    if roll < negative_p:
        return "negative", -rng.uniform(0.3, 1.0)
    if roll < negative_p + 0.45:
        return "neutral", rng.uniform(-0.25, 0.25)
    return "positive", rng.uniform(0.3, 1.0)


def _rows(n: int, now: datetime, span: timedelta, rng: random.Random, start_index: int) -> Iterator[tuple]:
    span_s = span.total_seconds()
    for k in range(start_index, start_index + n):
        in_spike = k % 50 == 0  # 2% of items land in the last hour, mostly negative energy news
        age = rng.uniform(0, 3600) if in_spike else rng.uniform(0, span_s)
        published = now - timedelta(seconds=age)
        topic = SPIKE_TOPIC if in_spike and rng.random() < 0.5 else rng.choice(TOPICS)
        sentiment, score = _sentiment(rng, 0.7 if in_spike and topic == SPIKE_TOPIC else 0.25)
        verb = rng.choice({"negative": _NEGATIVE, "neutral": _NEUTRAL, "positive": _POSITIVE}[sentiment])
        ticker = rng.choice(TICKERS)
        title = f"{ticker} {verb} ({topic.split(' |')[0]} #{k})"
        item_id = f"demo-{k}"
        yield (
            {
                "id": item_id,
                "published_at": published,
                "source": rng.choice(SOURCES),
                "title": title,
                "body": f"Synthetic demo story {k} about ${ticker}.",
                "url": f"https://news.example.com/{k}",
                "lang": "en",
                "story_key": story_key(title),
                "is_duplicate": k % 37 == 5,
                "duplicate_of": None,
                "ingested_at": published + timedelta(seconds=2),
            },
            {
                "item_id": item_id,
                "published_at": published,
                "is_duplicate": k % 37 == 5,
                "topic": topic,
                "topic_confidence": rng.uniform(0.5, 0.99),
                "sentiment": sentiment,
                "sentiment_score": score,
                "sentiment_confidence": rng.uniform(0.5, 0.99),
                "model_version": MODEL_VERSION,
                "tagged_at": published + timedelta(seconds=3),
            },
            {"item_id": item_id, "ticker": ticker, "published_at": published},
        )


def demo_alert(
    now: datetime,
    key_kind: str = "topic",
    key_value: str = SPIKE_TOPIC,
    state: str = "sent",
    minutes_ago: int = 10,
) -> dict[str, Any]:
    """One alerts row shaped like the detector's."""
    fired = now - timedelta(minutes=minutes_ago)
    return {
        "alert_key": f"{key_kind}:{key_value}:{fired.isoformat()}",
        "key_kind": key_kind,
        "key_value": key_value,
        "window_start": fired - timedelta(hours=1),
        "window_end": fired,
        "fired_at": fired,
        "severity": "high",
        "state": state,
        "attempts": 1 if state != "pending" else 0,
        "last_error": "HTTP 500 from webhook" if state == "failed" else None,
        "sent_at": fired + timedelta(seconds=1) if state == "sent" else None,
        "details": json.dumps({"count": 42, "negative": 30, "share": 0.71, "baseline_share": 0.25, "z": 4.2}),
    }


def seed_demo(
    engine: Engine,
    items: int,
    now: datetime | None = None,
    span: timedelta = timedelta(days=30),
    seed: int = 7,
    chunk: int = 20_000,
) -> SeedCounts:
    """Create the schema if needed and insert ``items`` synthetic tagged items (plus tickers, three alerts
    in different states and two worker heartbeats). Deterministic for a given ``seed`` and ``now``."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    init_db(engine)
    done = 0
    while done < items:
        batch = list(_rows(min(chunk, items - done), now, span, rng, done))
        with engine.begin() as conn:
            conn.execute(news_items.insert(), [r[0] for r in batch])
            conn.execute(news_tags.insert(), [r[1] for r in batch])
            conn.execute(news_tickers.insert(), [r[2] for r in batch])
        done += len(batch)
    alert_rows = [
        demo_alert(now, "topic", SPIKE_TOPIC, "sent", 10),
        demo_alert(now, "ticker", "XOM", "failed", 25),
        demo_alert(now, "overall", "all", "pending", 3),
    ]
    with engine.begin() as conn:
        conn.execute(alerts.insert(), alert_rows)
        conn.execute(
            worker_heartbeats.insert(),
            [
                {
                    "worker_id": f"worker-{i}",
                    "updated_at": now - timedelta(seconds=5 * i),
                    "model_version": MODEL_VERSION,
                    "items_total": 1000 * (i + 1),
                    "dlq_total": i,
                    "items_per_second": 40.0 + i,
                    "lag": 12 * i,
                    "last_batch_ms": 850.0,
                }
                for i in range(2)
            ],
        )
    return SeedCounts(items=items, tickers=items, alerts=len(alert_rows))


# Headlines the tests look for. The hostile one must show up as literal text: no script runs, no image loads.
KNOWN_HEADLINE = "Umbrella Corp shares slump after regulator opens probe"
HOSTILE_HEADLINE = (
    '<script>window.__finpulse_xss=1</script><img src=x onerror="window.__finpulse_xss=2">'
    " [click](javascript:alert(1)) $ACME crashes **hard**"
)


def seed_known(engine: Engine, now: datetime) -> list[NewsItem]:
    """Three specific items through the worker's real write path (``write_batch``), published a minute or
    two before ``now``: the known headline (ticker UMBR), the hostile one (ticker ACME) and a positive one."""
    init_db(engine)
    specs = [
        (
            KNOWN_HEADLINE,
            "Reuters",
            ("UMBR",),
            "https://news.example.com/umbrella",
            60,
            ("Legal | Regulation", "negative", -0.91),
        ),
        (
            HOSTILE_HEADLINE,
            "Evil Wire <b>",
            ("ACME",),
            "javascript:alert(1)",
            90,
            ("Stock Movement", "negative", -0.85),
        ),
        (
            "Initech beats estimates and raises guidance",
            "Bloomberg",
            ("INTC",),
            None,
            120,
            ("Earnings", "positive", 0.8),
        ),
    ]
    pairs = [
        (
            NewsItem(
                title=title,
                source=source,
                tickers=tickers,
                url=url,
                published_at=now - timedelta(seconds=age),
                body=f"Body of: {title}",
            ),
            Tags(topic, 0.9, sentiment, score, 0.88, MODEL_VERSION),
        )
        for title, source, tickers, url, age, (topic, sentiment, score) in specs
    ]
    with engine.begin() as conn:
        write_batch(conn, pairs, timedelta(hours=24), now=now)
    return [item for item, _ in pairs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill a database with synthetic FinPulse data")
    parser.add_argument("url", help="SQLAlchemy URL, e.g. sqlite:///./data/demo.db")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args(argv)
    counts = seed_demo(make_engine(args.url), args.items, span=timedelta(days=args.days))
    print(f"seeded {counts.items} items, {counts.alerts} alerts into {args.url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
