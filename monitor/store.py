"""Database schema and the worker's write path (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

Read model: the view ``tagged_news`` (one row per classified item). Everything else that reads (alerts,
dashboard) uses the tables below with bound parameters only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.schema import NewsItem, Tags, story_key


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

news_items = sa.Table(
    "news_items",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("lang", sa.String(16), nullable=False, server_default="en"),
    sa.Column("story_key", sa.String(40), nullable=False),
    sa.Column("is_duplicate", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("duplicate_of", sa.String(200)),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    sa.Index("ix_news_items_published_at", "published_at"),
    sa.Index("ix_news_items_story", "story_key", "published_at"),
    sa.Index("ix_news_items_source_time", "source", "published_at"),
)

# published_at and is_duplicate are copied here so topic/time aggregations use one index.
news_tags = sa.Table(
    "news_tags",
    metadata,
    sa.Column("item_id", sa.String(200), sa.ForeignKey("news_items.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    sa.Column("is_duplicate", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("topic_confidence", sa.Float, nullable=False),
    sa.Column("sentiment", sa.String(16), nullable=False),
    sa.Column("sentiment_score", sa.Float, nullable=False),
    sa.Column("sentiment_confidence", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("tagged_at", UTCDateTime(), nullable=False),
    sa.Index("ix_news_tags_time", "published_at"),
    sa.Index("ix_news_tags_topic_time", "topic", "published_at"),
)

news_tickers = sa.Table(
    "news_tickers",
    metadata,
    sa.Column("item_id", sa.String(200), sa.ForeignKey("news_items.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("ticker", sa.String(16), primary_key=True),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    sa.Index("ix_news_tickers_ticker_time", "ticker", "published_at"),
    sa.Index("ix_news_tickers_time", "published_at"),  # dashboard: movers over a time range
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_key", sa.String(300), nullable=False, unique=True),  # key + window start
    sa.Column("key_kind", sa.String(16), nullable=False),  # overall | topic | ticker
    sa.Column("key_value", sa.String(100), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=False),
    sa.Column("window_end", UTCDateTime(), nullable=False),
    sa.Column("fired_at", UTCDateTime(), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON: the numbers behind the alert
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),  # pending|sent|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("sent_at", UTCDateTime()),
    # JSON object: webhook id (hash of its URL, never the URL) -> ISO time it accepted this alert, so a retry
    # after a partial failure only posts to the receivers that have not got it yet.
    sa.Column("deliveries", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_alerts_fired", "fired_at"),
    sa.Index("ix_alerts_state", "state", "next_attempt_at"),
    sa.Index("ix_alerts_key_window", "key_kind", "key_value", "window_end"),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),  # a lease: a crashed holder's row goes stale
    sa.Column("acquired_at", UTCDateTime()),
)

worker_heartbeats = sa.Table(
    "worker_heartbeats",
    metadata,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("items_total", sa.Integer, nullable=False),
    sa.Column("dlq_total", sa.Integer, nullable=False),
    sa.Column("items_per_second", sa.Float, nullable=False),
    sa.Column("lag", sa.Integer, nullable=False),
    sa.Column("last_batch_ms", sa.Float, nullable=False),
)

TAGGED_NEWS_VIEW = """
CREATE VIEW tagged_news AS
SELECT i.id, i.published_at, i.source, i.title, i.url, i.lang, i.story_key,
       t.topic, t.topic_confidence, t.sentiment, t.sentiment_score, t.sentiment_confidence,
       t.model_version, i.is_duplicate, i.duplicate_of, i.ingested_at, t.tagged_at
FROM news_items i JOIN news_tags t ON t.item_id = i.id
"""


def make_engine(url: str, echo: bool = False) -> Engine:
    """Engine with SQLite tuned for one writer + many readers (WAL, busy timeout, FKs on)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may need the lock
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def init_db(engine: Engine, attempts: int = 5) -> None:
    """Create tables, indexes and the ``tagged_news`` view if missing (idempotent). Several processes may
    start at once: PostgreSQL serialises them with an advisory lock; on SQLite a lost race ("already
    exists") is simply retried."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243001)"))
                if engine.dialect.name == "sqlite":  # persistent in the file; readers never block the writer
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                metadata.create_all(conn, checkfirst=True)
                if "tagged_news" not in sa.inspect(conn).get_view_names():
                    conn.execute(sa.text(TAGGED_NEWS_VIEW))
            return
        except SQLAlchemyError as exc:
            if "already exists" in str(exc) and attempt < attempts - 1:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise StoreError(f"cannot initialise database: {exc.__class__.__name__}: {exc}") from exc


def epoch_seconds(column: Any, dialect_name: str) -> Any:
    """SQL expression: a UTC timestamp column as integer seconds since the epoch (for bucketing in SQL)."""
    if dialect_name == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return sa.cast(sa.func.extract("epoch", column), sa.BigInteger)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """Dialect insert with ON CONFLICT support (PostgreSQL and SQLite share the API)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int  # items new to the database
    duplicates: int  # of those, flagged as repeated stories


def find_duplicates(
    items: Sequence[NewsItem], earlier: dict[str, tuple[str, datetime]], window: timedelta
) -> dict[str, str]:
    """Pure: map item id -> id of the original story it repeats.

    ``earlier`` maps story_key -> (id, published_at) of the first stored item with that key. Items are
    considered in published order; an item repeats a story seen within ``window`` before (or at) it.
    """
    first = dict(earlier)
    out: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (i.published_at, i.id)):
        key = story_key(item.title)
        seen = first.get(key)
        if seen is not None and seen[0] != item.id and abs(item.published_at - seen[1]) <= window:
            out[item.id] = seen[0]
        else:
            first[key] = (item.id, item.published_at)
    return out


def write_batch(
    conn: Connection,
    pairs: Sequence[tuple[NewsItem, Tags]],
    duplicate_window: timedelta,
    now: datetime | None = None,
) -> WriteResult:
    """Store a classified batch in the caller's transaction. Idempotent on item id: a redelivered item keeps
    its first row and its duplicate decision; its tags are refreshed."""
    if not pairs:
        return WriteResult(0, 0)
    now = now or datetime.now(UTC)
    ids = [item.id for item, _ in pairs]
    existing = {
        r[0] for r in conn.execute(sa.select(news_items.c.id).where(news_items.c.id.in_(ids)))
    }
    fresh = [item for item, _ in pairs if item.id not in existing]
    fresh = list({i.id: i for i in fresh}.values())
    keys = {story_key(i.title) for i in fresh}
    earlier: dict[str, tuple[str, datetime]] = {}
    if fresh:
        lo = min(i.published_at for i in fresh) - duplicate_window
        hi = max(i.published_at for i in fresh) + duplicate_window
        rows = conn.execute(
            sa.select(news_items.c.story_key, news_items.c.id, news_items.c.published_at)
            .where(news_items.c.story_key.in_(keys))
            .where(news_items.c.published_at.between(lo, hi))
            .where(news_items.c.is_duplicate.is_(sa.false()))
            .order_by(news_items.c.published_at)
        )
        for key, id_, ts in rows:
            earlier.setdefault(key, (id_, ts))
    dups = find_duplicates(fresh, earlier, duplicate_window)
    if fresh:
        conn.execute(
            _insert(conn, news_items).on_conflict_do_nothing(index_elements=["id"]),
            [
                {
                    "id": i.id,
                    "published_at": i.published_at,
                    "source": i.source,
                    "title": i.title,
                    "body": i.body,
                    "url": i.url,
                    "lang": i.lang,
                    "story_key": story_key(i.title),
                    "is_duplicate": i.id in dups,
                    "duplicate_of": dups.get(i.id),
                    "ingested_at": now,
                }
                for i in fresh
            ],
        )
    # Duplicate flags as stored (first decision wins for redeliveries).
    stored = dict(
        conn.execute(sa.select(news_items.c.id, news_items.c.is_duplicate).where(news_items.c.id.in_(ids))).all()
    )
    tag_rows = {
        item.id: {
            "item_id": item.id,
            "published_at": item.published_at,
            "is_duplicate": bool(stored.get(item.id, False)),
            **tags.as_dict(),
            "tagged_at": now,
        }
        for item, tags in pairs
    }
    stmt = _insert(conn, news_tags)
    stmt = stmt.on_conflict_do_update(
        index_elements=["item_id"],
        set_={c: stmt.excluded[c] for c in ("topic", "topic_confidence", "sentiment", "sentiment_score",
                                              "sentiment_confidence", "model_version", "tagged_at")},
    )
    conn.execute(stmt, list(tag_rows.values()))
    ticker_rows = {
        (item.id, t): {"item_id": item.id, "ticker": t, "published_at": item.published_at}
        for item, _ in pairs
        for t in item.all_tickers()
    }
    if ticker_rows:
        conn.execute(
            _insert(conn, news_tickers).on_conflict_do_nothing(index_elements=["item_id", "ticker"]),
            list(ticker_rows.values()),
        )
    return WriteResult(inserted=len(fresh), duplicates=len(dups))


def upsert_heartbeat(conn: Connection, row: dict[str, Any]) -> None:
    stmt = _insert(conn, worker_heartbeats)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["worker_id"], set_={k: stmt.excluded[k] for k in row if k != "worker_id"}
        ),
        [row],
    )


def dumps(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, default=str)


def count_rows(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def iter_chunks(seq: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


# Typed handle on the view for readers (not created by metadata.create_all; init_db creates the view).
view_metadata = sa.MetaData()
tagged_news = sa.Table(
    "tagged_news",
    view_metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("published_at", UTCDateTime()),
    sa.Column("source", sa.String(200)),
    sa.Column("title", sa.Text),
    sa.Column("url", sa.Text),
    sa.Column("lang", sa.String(16)),
    sa.Column("story_key", sa.String(40)),
    sa.Column("topic", sa.String(64)),
    sa.Column("topic_confidence", sa.Float),
    sa.Column("sentiment", sa.String(16)),
    sa.Column("sentiment_score", sa.Float),
    sa.Column("sentiment_confidence", sa.Float),
    sa.Column("model_version", sa.String(100)),
    sa.Column("is_duplicate", sa.Boolean),
    sa.Column("duplicate_of", sa.String(200)),
    sa.Column("ingested_at", UTCDateTime()),
    sa.Column("tagged_at", UTCDateTime()),
)
