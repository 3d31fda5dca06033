"""Market mood in aggregate: sentiment volume per bucket/topic, KPIs, ticker movers and trends."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.base import Filters, Window, bucket_to_time, entity_key, frame, is_negative, tag_filters
from monitor.store import epoch_seconds, news_items, news_tags, news_tickers


def sentiment_volume(conn: Connection, f: Filters, bucket_seconds: int) -> pd.DataFrame:
    """Item counts per (time bucket, topic, sentiment); the Overview's charts are all reshaped from this.

    Columns: bucket (UTC timestamp of the bucket start), topic, sentiment, items.
    """
    epoch = epoch_seconds(news_tags.c.published_at, conn.dialect.name)
    bucket = ((epoch // bucket_seconds) * bucket_seconds).label("bucket")
    stmt = (
        sa.select(bucket, news_tags.c.topic, news_tags.c.sentiment, sa.func.count().label("items"))
        .where(*tag_filters(f))
        .group_by(bucket, news_tags.c.topic, news_tags.c.sentiment)
        .order_by(bucket)
    )
    return bucket_to_time(frame(conn, stmt, ["bucket", "topic", "sentiment", "items"]))


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
    widened = dataclasses.replace(f, start=baseline_start)
    stmt = sa.select(
        sa.func.sum(sa.case((in_window, 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(in_window, neg), 1), else_=0)),
        sa.func.sum(sa.case((in_window, 0), else_=1)),
        sa.func.sum(sa.case((sa.and_(sa.not_(in_window), neg), 1), else_=0)),
    ).where(*tag_filters(widened))
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
    out = frame(conn, stmt, cols)
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
            sa.func.sum(is_negative()).label("negative"),
            sa.func.avg(news_tags.c.sentiment_score).label("avg_score"),
        )
        .select_from(news_tickers.join(news_tags, news_tags.c.item_id == news_tickers.c.item_id))
        .where(news_tickers.c.ticker == entity_key(ticker))
        .where(news_tickers.c.published_at >= window.start, news_tickers.c.published_at < window.end)
        .where(news_tags.c.is_duplicate.is_(sa.false()))
        .group_by(bucket)
        .order_by(bucket)
    )
    out = bucket_to_time(frame(conn, stmt, ["bucket", "items", "negative", "avg_score"]))
    out["negative_share"] = out["negative"] / out["items"]
    return out


def latest_time(conn: Connection, f: Filters) -> datetime | None:
    """When the newest headline matching the filters (topics, sources, repeats) before ``f.end`` was
    published; None when there is none. Lets an empty window offer a jump to the latest data."""
    stmt = sa.select(sa.func.max(news_tags.c.published_at)).where(
        *tag_filters(f, with_time=False), news_tags.c.published_at < f.end
    )
    value = conn.execute(stmt).scalar_one_or_none()
    if isinstance(value, str):  # SQLite returns max() of a datetime column as text
        value = datetime.fromisoformat(value)
    return None if value is None else (value if value.tzinfo else value.replace(tzinfo=UTC))


def list_sources(conn: Connection, limit: int = 500) -> list[str]:
    stmt = sa.select(news_items.c.source).distinct().order_by(news_items.c.source).limit(limit)
    return [r[0] for r in conn.execute(stmt)]
