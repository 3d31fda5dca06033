"""Analysts' corrections as the dashboard shows them (the write side is monitor/feedback.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dashboards.data.base import MAX_ROWS, frame
from monitor.feedback import FEEDBACK_COLUMNS, latest_corrections
from monitor.store import feedback


def correction_note(c: dict[str, object]) -> str:
    """'sentiment → negative, topic → Earnings' for one correction (only what was changed)."""
    parts = [f"{head} → {c[f'new_{head}']}" for head in ("sentiment", "topic") if c.get(f"new_{head}")]
    return ", ".join(parts)


def corrected_by_item(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """item id -> note of its latest correction, for the given items that have one."""
    if not ids:
        return {}
    return {str(c["item_id"]): correction_note(c) for c in latest_corrections(conn, list(ids))}


def item_corrections(conn: Connection, item_id: str) -> pd.DataFrame:
    """Every correction of one item, newest first (who, when, old and new labels)."""
    stmt = (
        sa.select(*[feedback.c[c] for c in FEEDBACK_COLUMNS])
        .where(feedback.c.item_id == item_id)
        .order_by(feedback.c.id.desc())
        .limit(MAX_ROWS)
    )
    return frame(conn, stmt, FEEDBACK_COLUMNS)
