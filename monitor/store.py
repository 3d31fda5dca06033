"""Database schema and the worker's write path (SQLAlchemy Core; SQLite by default, PostgreSQL by URL).

Read model: the view ``tagged_news`` (one row per classified item). Everything else that reads (alerts,
dashboard) uses the tables below with bound parameters only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor.errors import StoreError
from monitor.schema import NewsItem, Tags, find_repeats, story_key

if TYPE_CHECKING:
    from monitor.entities import EntityLink


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
    sa.Column(
        "item_id", sa.String(200), sa.ForeignKey("news_items.id", ondelete="CASCADE"), primary_key=True
    ),
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
    sa.Column(
        "item_id", sa.String(200), sa.ForeignKey("news_items.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("ticker", sa.String(64), primary_key=True),  # entity key: symbol, watchlist key or "~Name"
    sa.Column("published_at", UTCDateTime(), nullable=False),
    # given | cashtag | watchlist | name | alias | provisional (monitor/entities.py)
    sa.Column("source", sa.String(16), nullable=False, server_default="cashtag"),
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

# Analysts' corrections of stored tags (the dashboard's Headlines page). Never changes news_tags: the model's
# answer stays what it was; ``finpulse feedback export`` turns the latest correction per item into training data.
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.String(200), sa.ForeignKey("news_items.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),  # what the model read (the title) when it was corrected
    sa.Column("old_sentiment", sa.String(16)),
    sa.Column("new_sentiment", sa.String(16)),  # NULL: the sentiment was not corrected
    sa.Column("old_topic", sa.String(64)),
    sa.Column("new_topic", sa.String(64)),  # NULL: the topic was not corrected
    sa.Column("model_version", sa.String(100)),
    sa.Column("analyst", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_feedback_item", "item_id", "created_at"),
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
       t.model_version, i.is_duplicate, i.duplicate_of, i.ingested_at, t.tagged_at,
       {entities} AS entities
FROM news_items i JOIN news_tags t ON t.item_id = i.id
"""
# The item's linked entities as "KEY:source;KEY:source" (NULL when none), sorted by key.
_ENTITIES_SQL = {
    "postgresql": "(SELECT string_agg(k.ticker || ':' || k.source, ';' ORDER BY k.ticker) "
    "FROM news_tickers k WHERE k.item_id = i.id)",
    "sqlite": "(SELECT group_concat(k.ticker || ':' || k.source, ';') "
    "FROM news_tickers k WHERE k.item_id = i.id)",  # primary-key order: sorted by ticker
}


def _migrate(conn: Connection) -> None:
    """Bring a database made by an older FinPulse up to this schema: ``news_tickers.source`` (old rows were
    given tickers and cashtags), room for entity keys in ``news_tickers.ticker``, and the ``tagged_news``
    view with its ``entities`` column. Idempotent; runs inside init_db's transaction (and lock)."""
    inspector = sa.inspect(conn)
    columns = {c["name"]: c for c in inspector.get_columns("news_tickers")}
    if "source" not in columns:
        conn.execute(
            sa.text("ALTER TABLE news_tickers ADD COLUMN source VARCHAR(16) NOT NULL DEFAULT 'cashtag'")
        )
    length = getattr(columns["ticker"]["type"], "length", None)
    if conn.dialect.name == "postgresql" and length is not None and length < 64:
        if "tagged_news" in inspector.get_view_names():
            conn.execute(sa.text("DROP VIEW tagged_news"))
        conn.execute(sa.text("ALTER TABLE news_tickers ALTER COLUMN ticker TYPE VARCHAR(64)"))
    views = sa.inspect(conn).get_view_names()
    if "tagged_news" in views and "entities" not in {
        c["name"] for c in sa.inspect(conn).get_columns("tagged_news")
    }:
        conn.execute(sa.text("DROP VIEW tagged_news"))
        views = []
    if "tagged_news" not in views:
        entities = _ENTITIES_SQL.get(conn.dialect.name, _ENTITIES_SQL["sqlite"])
        conn.execute(sa.text(TAGGED_NEWS_VIEW.format(entities=entities)))


_QUERY_SECRET_RE = re.compile(r"(?i)((?:password|passwd|pwd|sslpassword|secret|token)=)[^&;\s]*")


def url_text(url: str | SecretStr) -> str:
    return url.get_secret_value() if isinstance(url, SecretStr) else url


def mask_url(url: str | SecretStr) -> str:
    """The database URL for messages: password masked, in the authority and in the query string
    (``?password=…``); an unparsable URL is never echoed."""
    text = url_text(url)
    try:
        shown = sa.engine.make_url(text).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable database URL)"
    return _QUERY_SECRET_RE.sub(r"\1***", shown)


def describe_database(url: str | SecretStr) -> str:
    """What a viewer may see of the database: its kind and name, never host, user or password."""
    try:
        u = sa.engine.make_url(url_text(url))
    except (ArgumentError, ValueError):
        return "(unparsable database URL)"
    name = Path(u.database).name if u.get_backend_name() == "sqlite" and u.database else u.database
    return f"{u.get_backend_name()} database {name or '(default)'}"


def make_engine(url: str | SecretStr, echo: bool = False) -> Engine:
    """Engine with SQLite tuned for one writer + many readers (WAL, busy timeout, FKs on)."""
    url = url_text(url)
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
                    # pysqlite runs DDL outside transactions: open one, so that the tables, the migration and
                    # the view appear together (no reader sees news_items without tagged_news)
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                metadata.create_all(conn, checkfirst=True)
                _migrate(conn)
            return
        except SQLAlchemyError as exc:
            if "already exists" in str(exc) and attempt < attempts - 1:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise StoreError(f"cannot initialise database: {exc.__class__.__name__}: {exc}") from exc


def wait_for_database(engine: Engine, stop: threading.Event, what: str = "database") -> bool:
    """``init_db`` until it succeeds, backing off 0.5 s → 30 s while the database is unreachable (so a
    database that is down at start is waited for, never a crash loop). False if ``stop`` was set first."""
    delay = 0.5
    while not stop.is_set():
        try:
            init_db(engine)
            return True
        except StoreError as exc:
            import logging

            logging.getLogger(__name__).warning(
                "%s not ready (%s); retrying in %.1fs", what, str(exc).splitlines()[0][:200], delay
            )
        if stop.wait(delay):
            break
        delay = min(30.0, delay * 2)
    return False


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
    """Pure: map item id -> id of the original story it repeats (the rule: ``schema.find_repeats``)."""
    return find_repeats(((i.id, story_key(i.title), i.published_at) for i in items), earlier, window)


def _earlier_stories(
    conn: Connection, fresh: Sequence[NewsItem], window: timedelta
) -> dict[str, tuple[str, datetime]]:
    """story_key -> (id, published_at) of the first stored original within ``window`` of the batch."""
    earlier: dict[str, tuple[str, datetime]] = {}
    if not fresh:
        return earlier
    rows = conn.execute(
        sa.select(news_items.c.story_key, news_items.c.id, news_items.c.published_at)
        .where(news_items.c.story_key.in_({story_key(i.title) for i in fresh}))
        .where(
            news_items.c.published_at.between(
                min(i.published_at for i in fresh) - window, max(i.published_at for i in fresh) + window
            )
        )
        .where(news_items.c.is_duplicate.is_(sa.false()))
        .order_by(news_items.c.published_at)
    )
    for key, id_, ts in rows:
        earlier.setdefault(key, (id_, ts))
    return earlier


def _item_row(i: NewsItem, dups: dict[str, str], now: datetime) -> dict[str, Any]:
    return {
        "id": i.id, "published_at": i.published_at, "source": i.source, "title": i.title, "body": i.body,
        "url": i.url, "lang": i.lang, "story_key": story_key(i.title), "is_duplicate": i.id in dups,
        "duplicate_of": dups.get(i.id), "ingested_at": now,
    }  # fmt: skip


def entity_rows(
    winners: Sequence[tuple[NewsItem, Tags]], entities: Mapping[str, Sequence[EntityLink]] | None
) -> list[dict[str, Any]]:
    """``news_tickers`` rows: the item's linked entities, or (not linked) its given tickers and cashtags."""
    rows = []
    for item, _ in winners:
        if entities is not None and item.id in entities:
            pairs = [(e.key, e.source) for e in entities[item.id]]
        else:
            given = set(item.tickers)
            pairs = [(t, "given" if t in given else "cashtag") for t in item.all_tickers()]
        rows += [{"item_id": item.id, "ticker": k, "published_at": item.published_at, "source": src}
                 for k, src in dict(pairs).items()]  # fmt: skip
    return rows


def write_batch(
    conn: Connection,
    pairs: Sequence[tuple[NewsItem, Tags]],
    duplicate_window: timedelta,
    now: datetime | None = None,
    entities: Mapping[str, Sequence[EntityLink]] | None = None,
) -> WriteResult:
    """Store a classified batch in the caller's transaction. First writer wins, for the whole item: an id
    already stored (a redelivery, or another message reusing the id with other content) keeps its item row,
    tags, tickers and duplicate decision; within a batch the first message with an id wins. Tags and tickers
    are written only for the item rows this call really inserted (``RETURNING``), so two writers racing on
    one id cannot mix their contents either. ``entities`` (item id -> linked entities, with their match
    source) are stored in ``news_tickers``; items without an entry keep given tickers and cashtags."""
    if not pairs:
        return WriteResult(0, 0)
    now = now or datetime.now(UTC)
    first: dict[str, tuple[NewsItem, Tags]] = {}
    for item, tags in pairs:
        first.setdefault(item.id, (item, tags))
    existing = set(conn.execute(sa.select(news_items.c.id).where(news_items.c.id.in_(first))).scalars())
    fresh = [item for item, _ in first.values() if item.id not in existing]
    if not fresh:
        return WriteResult(0, 0)
    dups = find_duplicates(fresh, _earlier_stories(conn, fresh, duplicate_window), duplicate_window)
    inserted = set(
        conn.execute(
            _insert(conn, news_items)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(news_items.c.id),
            [_item_row(i, dups, now) for i in fresh],
        ).scalars()
    )
    winners = [first[i] for i in first if i in inserted]
    if not winners:
        return WriteResult(0, 0)
    conn.execute(
        _insert(conn, news_tags).on_conflict_do_nothing(index_elements=["item_id"]),
        [{"item_id": item.id, "published_at": item.published_at, "is_duplicate": item.id in dups,
          **tags.as_dict(), "tagged_at": now} for item, tags in winners],
    )  # fmt: skip
    ticker_rows = entity_rows(winners, entities)
    if ticker_rows:
        conn.execute(
            _insert(conn, news_tickers).on_conflict_do_nothing(index_elements=["item_id", "ticker"]),
            ticker_rows,
        )
    return WriteResult(inserted=len(winners), duplicates=sum(1 for item, _ in winners if item.id in dups))


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
    sa.Column("entities", sa.Text),  # "KEY:source;KEY:source" (news_tickers), NULL when none
)
