"""Fired alerts, their delivery states and numbers, and the headlines behind each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.base import MAX_ROWS, Filters, frame, safe_url
from dashboards.data.headlines import headline_query
from monitor.store import alerts, news_items, news_tags
from monitor.terms import story_terms

ALERT_COLUMNS = (
    "id alert_key key_kind key_value window_start window_end fired_at severity state attempts "
    "last_error sent_at details"
).split()


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
    return frame(conn, stmt, ALERT_COLUMNS)


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
    return frame(conn, stmt, ["state", "alerts"])


def alert_headlines(
    conn: Connection, key_kind: str, key_value: str, start: datetime, end: datetime, limit: int = 25
) -> pd.DataFrame:
    """The headlines behind an alert: unique stories in its window for its key (topic, entity or story term),
    most negative first."""
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
        headline_query(f, "", (), ticker, cols)
        .order_by(news_tags.c.sentiment_score, news_items.c.published_at.desc())
        .limit(None if key_kind == "term" else limit)
    )
    page = frame(conn, stmt, [c.name for c in cols])
    if (
        key_kind == "term"
    ):  # a story term's headlines: those whose terms hold the word, as the detector counted
        page = page[[key_value in story_terms(t) for t in page["title"]]].head(limit).reset_index(drop=True)
    page["url"] = page["url"].map(safe_url)
    return page
