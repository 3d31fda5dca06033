"""Operational state: schema presence, worker heartbeats, table sizes and database size."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.base import MAX_ROWS, frame
from monitor.store import alerts, news_items, news_tags, news_tickers, worker_heartbeats

REQUIRED_TABLES = ("news_items", "news_tags", "news_tickers", "alerts", "worker_heartbeats")


def missing_tables(conn: Connection) -> list[str]:
    """FinPulse tables absent from the database (all of them on a database nobody has initialised)."""
    inspector = sa.inspect(conn)
    return [name for name in REQUIRED_TABLES if not inspector.has_table(name)]


HEARTBEAT_COLUMNS = (
    "worker_id updated_at model_version items_total dlq_total items_per_second lag last_batch_ms"
).split()


def worker_heartbeats_frame(conn: Connection) -> pd.DataFrame:
    """One row per worker, most recently seen first."""
    stmt = (
        sa.select(*(worker_heartbeats.c[c] for c in HEARTBEAT_COLUMNS))
        .order_by(worker_heartbeats.c.updated_at.desc())
        .limit(MAX_ROWS)
    )
    return frame(conn, stmt, HEARTBEAT_COLUMNS)


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
