"""Row-level headline queries: paginated search, one item's details (always limited)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.base import Filters, entity_key, frame, safe_url, tag_filters
from dashboards.data.feedback import corrected_by_item
from monitor.store import news_items, news_tags, news_tickers

HEADLINE_COLUMNS = (
    "id published_at source title url topic sentiment sentiment_score sentiment_confidence "
    "topic_confidence is_duplicate"
).split()


def headline_query(
    f: Filters, search: str, sentiments: Sequence[str], ticker: str | None, columns: Sequence[Any]
) -> Any:
    stmt = (
        sa.select(*columns)
        .select_from(news_items.join(news_tags, news_tags.c.item_id == news_items.c.id))
        .where(*tag_filters(dataclasses.replace(f, sources=()), with_time=False))
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
                sa.select(news_tickers.c.item_id).where(news_tickers.c.ticker == entity_key(ticker))
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
    matches = headline_query(f, search, sentiments, ticker, [news_tags.c.item_id]).limit(cap + 1)
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
    """One page of matching headlines, newest first, with a ``tickers`` column ("AAPL, MSFT") and a
    ``corrected`` column (the latest analyst correction, "" when none; the stored tags never change).

    ``url`` holds only http(s) links (see ``safe_url``); titles are returned verbatim — pages must render
    them as text.
    """
    cols = [
        news_tags.c[c] if c in news_tags.c and c != "published_at" else news_items.c[c]
        for c in HEADLINE_COLUMNS
    ]
    stmt = (
        headline_query(f, search, sentiments, ticker, cols)
        .order_by(_newest_first(search), news_items.c.id)
        .limit(limit)
        .offset(offset)
    )
    page = frame(conn, stmt, HEADLINE_COLUMNS)
    page["url"] = page["url"].map(safe_url)
    page["tickers"] = page["id"].map(_tickers_by_item(conn, page["id"].tolist())).fillna("")
    corrected = corrected_by_item(conn, page["id"].tolist())
    page["corrected"] = [corrected.get(i, "") for i in page["id"]]
    return page


def _newest_first(search: str) -> Any:
    """Order on the table whose time index drives the query (see ``headline_query``)."""
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


DETAIL_COLUMNS = (
    "id published_at source title body url lang is_duplicate duplicate_of ingested_at topic "
    "topic_confidence sentiment sentiment_score sentiment_confidence model_version tagged_at"
).split()


def headline_detail(conn: Connection, item_id: str) -> pd.DataFrame:
    """Zero or one row: everything stored about one item, tags and tickers included."""
    cols = [news_items.c[c] if c in news_items.c else news_tags.c[c] for c in DETAIL_COLUMNS]
    stmt = (
        sa.select(*cols)
        .select_from(news_items.outerjoin(news_tags, news_tags.c.item_id == news_items.c.id))
        .where(news_items.c.id == item_id)
    )
    row = frame(conn, stmt, DETAIL_COLUMNS)
    row["url"] = row["url"].map(safe_url)
    row["tickers"] = row["id"].map(_tickers_by_item(conn, [item_id])).fillna("")
    corrected = corrected_by_item(conn, [item_id])
    row["corrected"] = [corrected.get(i, "") for i in row["id"]]
    return row
