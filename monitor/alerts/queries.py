"""Database reads and writes for alerts (SQLAlchemy Core, bound parameters only).

The detector's input is read as one row per distinct story (``load_story_rows``); counting into buckets is
``monitor.alerts.counting`` (shared with the backtest), never SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.alerts.counting import STORY_COLUMNS, AlertKey
from monitor.alerts.detector import Spike
from monitor.store import alerts, news_items, news_tags, news_tickers
from monitor.terms import story_terms

AlertState = Literal["pending", "sent", "failed", "rejected"]  # rejected: a webhook refused it for good (4xx)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    alert_key: str
    key: AlertKey
    window_start: datetime
    window_end: datetime
    fired_at: datetime
    severity: str
    details: dict[str, Any]
    state: AlertState
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    deliveries: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "key_kind": self.key.kind,
            "key_value": self.key.value,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "fired_at": self.fired_at.isoformat(),
            "severity": self.severity,
            "state": self.state,
            "attempts": self.attempts,
            **{k: v for k, v in self.details.items() if k != "headlines"},
            "headlines": self.details.get("headlines", []),
        }


def load_story_rows(conn: Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Distinct stories (repeats excluded) published in ``[start, end)``, one row each with the columns
    ``counting.count_keys`` reads: published_at, sentiment, topic, source, text (the title), tickers (tuple)."""
    span = sa.and_(
        news_tags.c.published_at >= start,
        news_tags.c.published_at < end,
        news_tags.c.is_duplicate.is_(sa.false()),
    )
    q = (
        sa.select(news_tags.c.item_id, news_tags.c.published_at, news_tags.c.sentiment, news_tags.c.topic,
                  news_items.c.source, news_items.c.title)
        .join(news_items, news_items.c.id == news_tags.c.item_id)
        .where(span)
        .order_by(news_tags.c.published_at, news_tags.c.item_id)
    )  # fmt: skip
    rows = pd.DataFrame(conn.execute(q).all(), columns=["item_id", *STORY_COLUMNS[:4], "text"])
    linked: dict[str, list[str]] = {}
    tq = (
        sa.select(news_tickers.c.item_id, news_tickers.c.ticker)
        .join(news_tags, news_tags.c.item_id == news_tickers.c.item_id)
        .where(span)
        .order_by(news_tickers.c.item_id, news_tickers.c.ticker)
    )
    for item_id, ticker in conn.execute(tq):
        linked.setdefault(item_id, []).append(ticker)
    rows["tickers"] = [tuple(linked.get(i, ())) for i in rows["item_id"]]
    rows["published_at"] = pd.to_datetime(rows["published_at"], utc=True)
    return rows


def first_story_time(conn: Connection) -> datetime | None:
    """When the stored history begins (the detector's warm-up and reference days count from here)."""
    value = conn.execute(
        sa.select(sa.func.min(news_tags.c.published_at)).where(news_tags.c.is_duplicate.is_(sa.false()))
    ).scalar_one_or_none()
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def top_negative_headlines(
    conn: Connection, key: AlertKey, start: datetime, end: datetime, limit: int = 5
) -> list[dict[str, Any]]:
    """The most negative distinct headlines behind an alert, most negative first (a term key's: those whose
    story terms hold the word, as ``counting`` counted them)."""
    q = (
        sa.select(
            news_items.c.title,
            news_items.c.url,
            news_items.c.source,
            news_items.c.published_at,
            news_tags.c.sentiment_score,
        )
        .join(news_tags, news_tags.c.item_id == news_items.c.id)
        .where(
            news_tags.c.published_at >= start,
            news_tags.c.published_at < end,
            news_tags.c.is_duplicate.is_(sa.false()),
            news_tags.c.sentiment == "negative",
        )
        .order_by(news_tags.c.sentiment_score, news_tags.c.published_at.desc())
        .limit(None if key.kind == "term" else limit)
    )
    if key.kind == "topic":
        q = q.where(news_tags.c.topic == key.value)
    elif key.kind == "ticker":
        q = q.where(
            news_items.c.id.in_(sa.select(news_tickers.c.item_id).where(news_tickers.c.ticker == key.value))
        )
    return [
        {
            "title": title,
            "url": url,
            "source": source,
            "published_at": ts.isoformat(),
            "score": round(score, 3),
        }
        for title, url, source, ts, score in conn.execute(q)
        if key.kind != "term" or key.value in story_terms(title)
    ][:limit]


def alert_key_of(key: AlertKey, window_start: datetime) -> str:
    return f"{key}@{window_start.isoformat()}"


def insert_alert(
    conn: Connection, key: AlertKey, spike: Spike, fired_at: datetime, headlines: list[dict[str, Any]]
) -> bool:
    """Store a new pending alert; False if this key + window is already stored (idempotent)."""
    details = {
        "count": spike.count,
        "expected": spike.expected,
        "p_value": spike.p_value,
        "evidence": spike.evidence,
        "total": spike.total,
        "share": spike.share,
        "explanation": spike.explanation(),
        "headlines": headlines,
        **spike.details,
    }
    exists = conn.execute(
        sa.select(alerts.c.id).where(alerts.c.alert_key == alert_key_of(key, spike.window_start))
    )
    if exists.first() is not None:
        return False
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(alerts).on_conflict_do_nothing(index_elements=["alert_key"])
    result = conn.execute(
        stmt,
        [
            {
                "alert_key": alert_key_of(key, spike.window_start),
                "key_kind": key.kind,
                "key_value": key.value,
                "window_start": spike.window_start,
                "window_end": spike.window_end,
                "fired_at": fired_at,
                "severity": spike.severity,
                "details": json.dumps(details, sort_keys=True, default=str),
                "state": "pending",
                "attempts": 0,
                "deliveries": "{}",
            }
        ],
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class LastAlert:
    window_end: datetime
    window_minutes: int | None
    evidence: float | None


def last_alerts(conn: Connection) -> dict[AlertKey, LastAlert]:
    """Every key's latest stored alert: window end, window minutes, evidence (one query, however many keys)."""
    latest = (
        sa.select(alerts.c.key_kind, alerts.c.key_value, sa.func.max(alerts.c.window_end).label("end"))
        .group_by(alerts.c.key_kind, alerts.c.key_value)
        .subquery()
    )
    q = sa.select(alerts.c.key_kind, alerts.c.key_value, alerts.c.window_end, alerts.c.details).join(
        latest,
        sa.and_(
            alerts.c.key_kind == latest.c.key_kind,
            alerts.c.key_value == latest.c.key_value,
            alerts.c.window_end == latest.c.end,
        ),
    )
    out: dict[AlertKey, LastAlert] = {}
    for kind, value, end, details in conn.execute(q):
        d = json.loads(details) if details else {}
        minutes, evidence = d.get("window_minutes"), d.get("evidence")
        out[AlertKey(kind, value)] = LastAlert(
            end,
            int(minutes) if minutes is not None else None,
            float(evidence) if evidence is not None else None,
        )
    return out


def _row_to_alert(row: Any) -> StoredAlert:
    return StoredAlert(
        id=row.id,
        alert_key=row.alert_key,
        key=AlertKey(row.key_kind, row.key_value),
        window_start=row.window_start,
        window_end=row.window_end,
        fired_at=row.fired_at,
        severity=row.severity,
        details=json.loads(row.details),
        state=row.state,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        deliveries=json.loads(row.deliveries or "{}"),
    )


def due_alerts(conn: Connection, now: datetime, limit: int = 100) -> list[StoredAlert]:
    """Pending alerts and failed ones whose retry time has come, oldest first."""
    q = (
        sa.select(alerts)
        .where(alerts.c.state.in_(("pending", "failed")))
        .where(sa.or_(alerts.c.next_attempt_at.is_(None), alerts.c.next_attempt_at <= now))
        .order_by(alerts.c.fired_at, alerts.c.id)
        .limit(limit)
    )
    return [_row_to_alert(r) for r in conn.execute(q)]


def list_alerts(conn: Connection, limit: int = 50, state: AlertState | None = None) -> list[StoredAlert]:
    q = sa.select(alerts).order_by(alerts.c.fired_at.desc(), alerts.c.id.desc()).limit(limit)
    if state is not None:
        q = q.where(alerts.c.state == state)
    return [_row_to_alert(r) for r in conn.execute(q)]


def save_deliveries(conn: Connection, alert_id: int, deliveries: dict[str, str]) -> None:
    """Persist which webhooks accepted an alert, right after they did."""
    conn.execute(
        sa.update(alerts)
        .where(alerts.c.id == alert_id)
        .values(deliveries=json.dumps(deliveries, sort_keys=True))
    )


def record_attempt(
    conn: Connection,
    alert: StoredAlert,
    deliveries: dict[str, str],
    error: str | None,
    now: datetime,
    next_attempt_at: datetime | None,
    note: str | None = None,
) -> None:
    """Save the outcome of one delivery attempt: sent when every routed webhook has accepted it (``note``
    is kept in ``last_error`` for a sent alert that needs explaining, e.g. no webhook routes it)."""
    values: dict[str, Any] = {
        "deliveries": json.dumps(deliveries, sort_keys=True),
        "attempts": alert.attempts + 1,
    }
    if error is None:
        values |= {"state": "sent", "sent_at": now, "last_error": note, "next_attempt_at": None}
    elif note == "rejected":  # terminal: not picked up by due_alerts again
        values |= {"state": "rejected", "last_error": error[:2000], "next_attempt_at": None}
    else:
        values |= {"state": "failed", "last_error": error[:2000], "next_attempt_at": next_attempt_at}
    conn.execute(sa.update(alerts).where(alerts.c.id == alert.id).values(**values))
