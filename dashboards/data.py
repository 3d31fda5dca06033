"""Everything the dashboard reads, as pure functions of a connection and parameters returning DataFrames.

Rules: bound SQL parameters only (SQLAlchemy Core expressions), aggregation in SQL (the pages never pull a
whole table into pandas; row-level queries are paginated or limited), and the same code on SQLite and
PostgreSQL. Nothing here imports Streamlit, so it is tested on its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.store import alerts, epoch_seconds, news_items, news_tags, news_tickers, worker_heartbeats

# Label -> (span, bucket seconds). Buckets keep every chart at roughly 30-100 points.
TIME_RANGES: dict[str, tuple[timedelta, int]] = {
    "Last hour": (timedelta(hours=1), 60),
    "Last 6 hours": (timedelta(hours=6), 5 * 60),
    "Last 24 hours": (timedelta(hours=24), 30 * 60),
    "Last 7 days": (timedelta(days=7), 3 * 3600),
    "Last 30 days": (timedelta(days=30), 12 * 3600),
}
REQUIRED_TABLES = ("news_items", "news_tags", "news_tickers", "alerts", "worker_heartbeats")
MAX_ROWS = 1_000  # cap for row-level lists (alerts, heartbeats)


@dataclass(frozen=True, slots=True)
class Window:
    """A time range split into equal buckets: [start, end), bucket_seconds wide."""

    start: datetime
    end: datetime
    bucket_seconds: int


@dataclass(frozen=True, slots=True)
class Filters:
    """What the analyst narrowed the view to. Empty tuples mean "all"."""

    start: datetime
    end: datetime
    topics: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    include_duplicates: bool = False


def window_for(label: str, now: datetime) -> Window:
    """The named range ending at ``now``, its start aligned to a bucket boundary so buckets are stable."""
    span, bucket = TIME_RANGES[label]
    start_epoch = int((now - span).timestamp()) // bucket * bucket
    return Window(datetime.fromtimestamp(start_epoch, UTC), now, bucket)


def safe_url(url: str | None) -> str | None:
    """Only http(s) links from news reach the browser (no ``javascript:`` or ``data:`` URLs)."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def _is_negative() -> Any:
    return sa.case((news_tags.c.sentiment == "negative", 1), else_=0)


def _tag_filters(f: Filters, with_time: bool = True) -> list[Any]:
    """WHERE clauses on news_tags (and news_items.source when sources are chosen)."""
    clauses: list[Any] = []
    if with_time:
        clauses += [news_tags.c.published_at >= f.start, news_tags.c.published_at < f.end]
    if f.topics:
        clauses.append(news_tags.c.topic.in_(f.topics))
    if not f.include_duplicates:
        clauses.append(news_tags.c.is_duplicate.is_(sa.false()))
    if f.sources:
        clauses.append(
            news_tags.c.item_id.in_(sa.select(news_items.c.id).where(news_items.c.source.in_(f.sources)))
        )
    return clauses


def _frame(conn: Connection, stmt: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(columns or result.keys()))


def _bucket_to_time(frame: pd.DataFrame, column: str = "bucket") -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="s", utc=True)
    return frame


def missing_tables(conn: Connection) -> list[str]:
    """FinPulse tables absent from the database (all of them on a database nobody has initialised)."""
    inspector = sa.inspect(conn)
    return [name for name in REQUIRED_TABLES if not inspector.has_table(name)]


def sentiment_volume(conn: Connection, f: Filters, bucket_seconds: int) -> pd.DataFrame:
    """Item counts per (time bucket, topic, sentiment); the Overview's charts are all reshaped from this.

    Columns: bucket (UTC timestamp of the bucket start), topic, sentiment, items.
    """
    epoch = epoch_seconds(news_tags.c.published_at, conn.dialect.name)
    bucket = ((epoch // bucket_seconds) * bucket_seconds).label("bucket")
    stmt = (
        sa.select(bucket, news_tags.c.topic, news_tags.c.sentiment, sa.func.count().label("items"))
        .where(*_tag_filters(f))
        .group_by(bucket, news_tags.c.topic, news_tags.c.sentiment)
        .order_by(bucket)
    )
    return _bucket_to_time(_frame(conn, stmt, ["bucket", "topic", "sentiment", "items"]))


def negative_share(volume: pd.DataFrame) -> pd.DataFrame:
    """From ``sentiment_volume``: per (bucket, topic) items, negative and negative_share (small frame)."""
    if volume.empty:
        return pd.DataFrame(columns=["bucket", "topic", "items", "negative", "negative_share"])
    flagged = volume.assign(negative=volume["items"].where(volume["sentiment"] == "negative", 0))
    out = flagged.groupby(["bucket", "topic"], as_index=False)[["items", "negative"]].sum()
    out["negative_share"] = out["negative"] / out["items"]
    return out


def headline_kpis(conn: Connection, f: Filters, baseline_start: datetime) -> pd.DataFrame:
    """One row: items and negative share in the window, and the same over [baseline_start, f.start)."""
    in_window = news_tags.c.published_at >= f.start
    neg = news_tags.c.sentiment == "negative"
    widened = Filters(baseline_start, f.end, f.topics, f.sources, f.include_duplicates)
    stmt = sa.select(
        sa.func.sum(sa.case((in_window, 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(in_window, neg), 1), else_=0)),
        sa.func.sum(sa.case((in_window, 0), else_=1)),
        sa.func.sum(sa.case((sa.and_(sa.not_(in_window), neg), 1), else_=0)),
    ).where(*_tag_filters(widened))
    items, negative, base_items, base_negative = (int(v or 0) for v in conn.execute(stmt).one())
    return pd.DataFrame(
        [
            {
                "items": items,
                "negative": negative,
                "negative_share": negative / items if items else None,
                "baseline_items": base_items,
                "baseline_share": base_negative / base_items if base_items else None,
            }
        ]
    )


ALERT_COLUMNS = [
    "id",
    "alert_key",
    "key_kind",
    "key_value",
    "window_start",
    "window_end",
    "fired_at",
    "severity",
    "state",
    "attempts",
    "last_error",
    "sent_at",
    "details",
]


def fired_alerts(
    conn: Connection, start: datetime, end: datetime, states: Sequence[str] = (), limit: int = MAX_ROWS
) -> pd.DataFrame:
    """Alerts fired in [start, end), newest first, at most ``limit``."""
    stmt = (
        sa.select(*(alerts.c[c] for c in ALERT_COLUMNS))
        .where(alerts.c.fired_at >= start, alerts.c.fired_at < end)
        .order_by(alerts.c.fired_at.desc(), alerts.c.id.desc())
        .limit(limit)
    )
    if states:
        stmt = stmt.where(alerts.c.state.in_(tuple(states)))
    return _frame(conn, stmt, ALERT_COLUMNS)


def with_alert_numbers(fired: pd.DataFrame, max_columns: int = 8) -> pd.DataFrame:
    """``fired_alerts`` plus one column per scalar number in the alerts' JSON ``details`` (count, share,
    baseline, z, ...). Details that are not JSON objects add nothing."""
    parsed = [_json_object(text) for text in fired["details"]]
    keys: list[str] = []
    for obj in parsed:
        for key, value in obj.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key not in keys:
                keys.append(key)
    out = fired.copy()
    for key in keys[:max_columns]:
        name = key if key not in out.columns else f"details.{key}"
        out[name] = [obj.get(key) if isinstance(obj.get(key), int | float) else None for obj in parsed]
    return out


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def alert_state_counts(conn: Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Columns: state, alerts — how many alerts fired in [start, end) are pending / sent / failed."""
    stmt = (
        sa.select(alerts.c.state, sa.func.count().label("alerts"))
        .where(alerts.c.fired_at >= start, alerts.c.fired_at < end)
        .group_by(alerts.c.state)
        .order_by(alerts.c.state)
    )
    return _frame(conn, stmt, ["state", "alerts"])


HEADLINE_COLUMNS = [
    "id",
    "published_at",
    "source",
    "title",
    "url",
    "topic",
    "sentiment",
    "sentiment_score",
    "sentiment_confidence",
    "topic_confidence",
    "is_duplicate",
]


def _headline_query(
    f: Filters, search: str, sentiments: Sequence[str], ticker: str | None, columns: Sequence[Any]
) -> Any:
    stmt = (
        sa.select(*columns)
        .select_from(news_items.join(news_tags, news_tags.c.item_id == news_items.c.id))
        .where(*_tag_filters(Filters(f.start, f.end, f.topics, (), f.include_duplicates), with_time=False))
    )
    # Both tables carry published_at. A text search has to read titles anyway, so the range goes on
    # news_items (SQLite then reads the table once instead of hopping from the tags index per row).
    when = news_items.c.published_at if search.strip() else news_tags.c.published_at
    stmt = stmt.where(when >= f.start, when < f.end)
    if f.sources:
        stmt = stmt.where(news_items.c.source.in_(f.sources))
    if sentiments:
        stmt = stmt.where(news_tags.c.sentiment.in_(tuple(sentiments)))
    if search.strip():
        stmt = stmt.where(sa.func.lower(news_items.c.title).contains(search.strip().lower(), autoescape=True))
    if ticker:
        stmt = stmt.where(
            news_items.c.id.in_(
                sa.select(news_tickers.c.item_id).where(news_tickers.c.ticker == ticker.upper())
            )
        )
    return stmt


def count_headlines(
    conn: Connection,
    f: Filters,
    search: str = "",
    sentiments: Sequence[str] = (),
    ticker: str | None = None,
    cap: int = 10_000,
) -> int:
    """How many headlines match (for pagination), counting at most ``cap + 1`` so a vague search over a
    month of news stays cheap; a result above ``cap`` means "more than cap"."""
    matches = _headline_query(f, search, sentiments, ticker, [news_tags.c.item_id]).limit(cap + 1)
    stmt = sa.select(sa.func.count()).select_from(matches.subquery())
    return int(conn.execute(stmt).scalar_one())


def headlines(
    conn: Connection,
    f: Filters,
    search: str = "",
    sentiments: Sequence[str] = (),
    ticker: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> pd.DataFrame:
    """One page of matching headlines, newest first, with a ``tickers`` column ("AAPL, MSFT").

    ``url`` holds only http(s) links (see ``safe_url``); titles are returned verbatim — pages must render
    them as text.
    """
    cols = [
        news_tags.c[c] if c in news_tags.c and c != "published_at" else news_items.c[c]
        for c in HEADLINE_COLUMNS
    ]
    stmt = (
        _headline_query(f, search, sentiments, ticker, cols)
        .order_by(_newest_first(search), news_items.c.id)
        .limit(limit)
        .offset(offset)
    )
    page = _frame(conn, stmt, HEADLINE_COLUMNS)
    page["url"] = page["url"].map(safe_url)
    page["tickers"] = page["id"].map(_tickers_by_item(conn, page["id"].tolist())).fillna("")
    return page


def _newest_first(search: str) -> Any:
    """Order on the table whose time index drives the query (see ``_headline_query``)."""
    return (news_items.c.published_at if search.strip() else news_tags.c.published_at).desc()


def _tickers_by_item(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = conn.execute(
        sa.select(news_tickers.c.item_id, news_tickers.c.ticker)
        .where(news_tickers.c.item_id.in_(list(ids)))
        .order_by(news_tickers.c.item_id, news_tickers.c.ticker)
    )
    out: dict[str, list[str]] = {}
    for item_id, ticker in rows:
        out.setdefault(item_id, []).append(ticker)
    return {k: ", ".join(v) for k, v in out.items()}


DETAIL_COLUMNS = [
    "id",
    "published_at",
    "source",
    "title",
    "body",
    "url",
    "lang",
    "is_duplicate",
    "duplicate_of",
    "ingested_at",
    "topic",
    "topic_confidence",
    "sentiment",
    "sentiment_score",
    "sentiment_confidence",
    "model_version",
    "tagged_at",
]


def headline_detail(conn: Connection, item_id: str) -> pd.DataFrame:
    """Zero or one row: everything stored about one item, tags and tickers included."""
    cols = [news_items.c[c] if c in news_items.c else news_tags.c[c] for c in DETAIL_COLUMNS]
    stmt = (
        sa.select(*cols)
        .select_from(news_items.outerjoin(news_tags, news_tags.c.item_id == news_items.c.id))
        .where(news_items.c.id == item_id)
    )
    row = _frame(conn, stmt, DETAIL_COLUMNS)
    row["url"] = row["url"].map(safe_url)
    row["tickers"] = row["id"].map(_tickers_by_item(conn, [item_id])).fillna("")
    return row


def alert_headlines(
    conn: Connection, key_kind: str, key_value: str, start: datetime, end: datetime, limit: int = 25
) -> pd.DataFrame:
    """The headlines behind an alert: unique stories in its window for its key, most negative first."""
    f = Filters(start, end, (key_value,) if key_kind == "topic" else ())
    ticker = key_value if key_kind == "ticker" else None
    cols = [
        news_items.c.id,
        news_items.c.published_at,
        news_items.c.source,
        news_items.c.title,
        news_items.c.url,
        news_tags.c.topic,
        news_tags.c.sentiment,
        news_tags.c.sentiment_score,
    ]
    stmt = (
        _headline_query(f, "", (), ticker, cols)
        .order_by(news_tags.c.sentiment_score, news_items.c.published_at.desc())
        .limit(limit)
    )
    page = _frame(conn, stmt, [c.name for c in cols])
    page["url"] = page["url"].map(safe_url)
    return page


def ticker_movers(
    conn: Connection, start: datetime, end: datetime, min_items: int = 5, limit: int = 25
) -> pd.DataFrame:
    """Tickers ranked by the rise of their negative share in [start, end) over the window before it.

    Columns: ticker, items, negative_share, avg_score, prev_items, prev_negative_share, share_change.
    Only tickers with at least ``min_items`` unique stories in the window.
    """
    prev_start = start - (end - start)
    joined = news_tickers.join(news_tags, news_tags.c.item_id == news_tickers.c.item_id)
    now_ = news_tickers.c.published_at >= start
    neg = news_tags.c.sentiment == "negative"
    items = sa.func.sum(sa.case((now_, 1), else_=0))
    stmt = (
        sa.select(
            news_tickers.c.ticker,
            items.label("items"),
            sa.func.sum(sa.case((sa.and_(now_, neg), 1), else_=0)).label("negative"),
            sa.func.avg(sa.case((now_, news_tags.c.sentiment_score), else_=None)).label("avg_score"),
            sa.func.sum(sa.case((now_, 0), else_=1)).label("prev_items"),
            sa.func.sum(sa.case((sa.and_(sa.not_(now_), neg), 1), else_=0)).label("prev_negative"),
        )
        .select_from(joined)
        .where(news_tickers.c.published_at >= prev_start, news_tickers.c.published_at < end)
        .where(news_tags.c.is_duplicate.is_(sa.false()))
        .group_by(news_tickers.c.ticker)
        .having(items >= min_items)
    )
    cols = ["ticker", "items", "negative", "avg_score", "prev_items", "prev_negative"]
    out = _frame(conn, stmt, cols)
    out["negative_share"] = out["negative"] / out["items"]
    prev = out["prev_items"].where(out["prev_items"] > 0)
    out["prev_negative_share"] = out["prev_negative"] / prev
    out["share_change"] = out["negative_share"] - out["prev_negative_share"].fillna(0.0)
    out = out.sort_values(["share_change", "items"], ascending=[False, False]).head(limit)
    keep = [
        "ticker",
        "items",
        "negative_share",
        "avg_score",
        "prev_items",
        "prev_negative_share",
        "share_change",
    ]
    return out[keep].reset_index(drop=True)


def ticker_trend(conn: Connection, ticker: str, window: Window) -> pd.DataFrame:
    """Per bucket for one ticker: items, negative, avg_score, negative_share (unique stories)."""
    epoch = epoch_seconds(news_tickers.c.published_at, conn.dialect.name)
    bucket = ((epoch // window.bucket_seconds) * window.bucket_seconds).label("bucket")
    stmt = (
        sa.select(
            bucket,
            sa.func.count().label("items"),
            sa.func.sum(_is_negative()).label("negative"),
            sa.func.avg(news_tags.c.sentiment_score).label("avg_score"),
        )
        .select_from(news_tickers.join(news_tags, news_tags.c.item_id == news_tickers.c.item_id))
        .where(news_tickers.c.ticker == ticker.upper())
        .where(news_tickers.c.published_at >= window.start, news_tickers.c.published_at < window.end)
        .where(news_tags.c.is_duplicate.is_(sa.false()))
        .group_by(bucket)
        .order_by(bucket)
    )
    out = _bucket_to_time(_frame(conn, stmt, ["bucket", "items", "negative", "avg_score"]))
    out["negative_share"] = out["negative"] / out["items"]
    return out


def list_sources(conn: Connection, limit: int = 500) -> list[str]:
    stmt = sa.select(news_items.c.source).distinct().order_by(news_items.c.source).limit(limit)
    return [r[0] for r in conn.execute(stmt)]


HEARTBEAT_COLUMNS = [
    "worker_id",
    "updated_at",
    "model_version",
    "items_total",
    "dlq_total",
    "items_per_second",
    "lag",
    "last_batch_ms",
]


def worker_heartbeats_frame(conn: Connection) -> pd.DataFrame:
    """One row per worker, most recently seen first."""
    stmt = (
        sa.select(*(worker_heartbeats.c[c] for c in HEARTBEAT_COLUMNS))
        .order_by(worker_heartbeats.c.updated_at.desc())
        .limit(MAX_ROWS)
    )
    return _frame(conn, stmt, HEARTBEAT_COLUMNS)


def table_stats(conn: Connection) -> pd.DataFrame:
    """Columns: table, rows, latest (newest published_at / fired_at / updated_at, or None)."""
    specs: list[tuple[sa.Table, Any]] = [
        (news_items, news_items.c.published_at),
        (news_tags, news_tags.c.published_at),
        (news_tickers, news_tickers.c.published_at),
        (alerts, alerts.c.fired_at),
        (worker_heartbeats, worker_heartbeats.c.updated_at),
    ]
    rows = []
    for table, time_col in specs:
        count, latest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(time_col)).select_from(table)
        ).one()
        rows.append({"table": table.name, "rows": int(count), "latest": _as_utc(latest)})
    return pd.DataFrame(rows, columns=["table", "rows", "latest"])


def _as_utc(value: Any) -> datetime | None:
    """MAX() over a SQLite text column comes back as text, bypassing the column type."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_size_bytes(conn: Connection) -> int | None:
    """Size of the database on disk, or None where the backend cannot say."""
    if conn.dialect.name == "sqlite":
        pages = conn.execute(sa.text("PRAGMA page_count")).scalar()
        size = conn.execute(sa.text("PRAGMA page_size")).scalar()
        return int(pages or 0) * int(size or 0)
    if conn.dialect.name == "postgresql":
        return int(conn.execute(sa.select(sa.func.pg_database_size(sa.func.current_database()))).scalar_one())
    return None
