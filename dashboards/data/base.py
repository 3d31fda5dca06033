"""Shared pieces of the data module: time windows, filters, and SQL/DataFrame helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.schema import TICKER_RE
from monitor.store import news_items, news_tags, news_tickers

TIME_RANGES: dict[str, tuple[timedelta, int]] = {
    "Last hour": (timedelta(hours=1), 60),
    "Last 6 hours": (timedelta(hours=6), 5 * 60),
    "Last 24 hours": (timedelta(hours=24), 30 * 60),
    "Last 7 days": (timedelta(days=7), 3 * 3600),
    "Last 30 days": (timedelta(days=30), 12 * 3600),
}
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
    companies: tuple[str, ...] = ()  # entity keys (the watchlist): only headlines naming one of them


def entity_key(value: str) -> str:
    """What an analyst typed, as a ``news_tickers`` key: a ticker symbol upper-cased (``$aapl`` -> ``AAPL``),
    any other entity key (a provisional ``~Name``, a watchlist key with other characters) as given."""
    text = value.strip()
    symbol = text.lstrip("$").upper()
    return symbol if TICKER_RE.fullmatch(symbol) and not text.startswith("~") else text


def window_for(label: str, now: datetime) -> Window:
    """The named range ending at ``now``, its start aligned to a bucket boundary so buckets are stable."""
    span, bucket = TIME_RANGES[label]
    start_epoch = int((now - span).timestamp()) // bucket * bucket
    return Window(datetime.fromtimestamp(start_epoch, UTC), now, bucket)


def safe_url(url: object) -> str | None:
    """Only http(s) links from news reach the browser (no ``javascript:`` or ``data:`` URLs)."""
    if not isinstance(url, str) or not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def is_negative() -> Any:
    return sa.case((news_tags.c.sentiment == "negative", 1), else_=0)


def tag_filters(f: Filters, with_time: bool = True) -> list[Any]:
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
    if f.companies:
        clauses.append(
            news_tags.c.item_id.in_(
                sa.select(news_tickers.c.item_id).where(news_tickers.c.ticker.in_(f.companies))
            )
        )
    return clauses


def frame(conn: Connection, stmt: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    result = conn.execute(stmt)
    return pd.DataFrame(result.fetchall(), columns=list(columns or result.keys()))


def bucket_to_time(frame: pd.DataFrame, column: str = "bucket") -> pd.DataFrame:
    frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="s", utc=True)
    return frame
