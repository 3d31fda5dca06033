"""One company's view: its alerts, how its sentiment compares with its topic, and finding companies.

A company is an entity key of ``news_tickers`` (a ticker symbol, a watchlist key or a provisional name), so
whatever the entity linker writes shows up here. Its trend and headlines reuse ``ticker_trend`` and
``headlines(..., ticker=key)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.alerts import ALERT_COLUMNS
from dashboards.data.base import MAX_ROWS, Window, bucket_to_time, frame, is_negative
from monitor.store import alerts, epoch_seconds, news_tags, news_tickers


def company_alerts(conn: Connection, key: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Alerts on the company's key fired in [start, end), newest first."""
    stmt = (
        sa.select(*(alerts.c[c] for c in ALERT_COLUMNS))
        .where(alerts.c.key_kind == "ticker", alerts.c.key_value == key)
        .where(alerts.c.fired_at >= start, alerts.c.fired_at < end)
        .order_by(alerts.c.fired_at.desc())
        .limit(MAX_ROWS)
    )
    return frame(conn, stmt, ALERT_COLUMNS)


def company_topic(conn: Connection, key: str, window: Window) -> str | None:
    """The topic most of the company's headlines in the window have (None without headlines)."""
    stmt = (
        sa.select(news_tags.c.topic, sa.func.count().label("n"))
        .select_from(news_tickers.join(news_tags, news_tags.c.item_id == news_tickers.c.item_id))
        .where(news_tickers.c.ticker == key)
        .where(news_tickers.c.published_at >= window.start, news_tickers.c.published_at < window.end)
        .group_by(news_tags.c.topic)
        .order_by(sa.desc("n"), news_tags.c.topic)
        .limit(1)
    )
    row = conn.execute(stmt).first()
    return None if row is None else str(row[0])


def topic_trend(conn: Connection, topic: str, window: Window) -> pd.DataFrame:
    """Per bucket for one topic (all companies): items, negative, negative_share (unique stories)."""
    epoch = epoch_seconds(news_tags.c.published_at, conn.dialect.name)
    bucket = ((epoch // window.bucket_seconds) * window.bucket_seconds).label("bucket")
    stmt = (
        sa.select(bucket, sa.func.count().label("items"), sa.func.sum(is_negative()).label("negative"))
        .where(news_tags.c.topic == topic, news_tags.c.is_duplicate.is_(sa.false()))
        .where(news_tags.c.published_at >= window.start, news_tags.c.published_at < window.end)
        .group_by(bucket)
        .order_by(bucket)
    )
    out = bucket_to_time(frame(conn, stmt, ["bucket", "items", "negative"]))
    out["negative_share"] = out["negative"] / out["items"]
    return out


def find_companies(
    conn: Connection, text: str, known: Sequence[tuple[str, str]] = (), limit: int = 20
) -> pd.DataFrame:
    """Companies whose key or name (``known``: (key, name) pairs, e.g. the watchlist's) contains ``text``,
    those with the most stored headlines first. Columns: key, name, headlines."""
    names = dict(known)
    needle = text.strip().lower()
    if not needle:
        return pd.DataFrame(columns=["key", "name", "headlines"])
    named = [k for k, n in names.items() if needle in n.lower()][:200]
    match = sa.func.lower(news_tickers.c.ticker).contains(needle, autoescape=True)
    if named:
        match = sa.or_(match, news_tickers.c.ticker.in_(named))
    stmt = (
        sa.select(news_tickers.c.ticker, sa.func.count().label("headlines"))
        .where(match)
        .group_by(news_tickers.c.ticker)
        .order_by(sa.desc("headlines"), news_tickers.c.ticker)
        .limit(limit)
    )
    out = frame(conn, stmt, ["key", "headlines"])
    out.insert(1, "name", out["key"].map(lambda k: names.get(k, "")))
    return out
