"""``finpulse ingest replay FILE``: publish a historical CSV/JSONL file in time order, optionally paced."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from monitor.schema import NewsItem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ColumnMap:
    title: str = "title"
    time: str = "published_at"
    source: str = "source"
    url: str = "url"
    tickers: str = "tickers"
    id: str = "id"
    body: str = "body"
    default_source: str = "replay"
    timezone: str = "UTC"  # applied to naive timestamps


def read_rows(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """CSV or JSONL (by extension; ``.json``/``.jsonl``/``.ndjson`` are JSON lines), plus one error line per
    line that could not be read at all (a malformed line is reported and skipped, never aborts the file).
    Each row keeps its line number in ``_line``."""
    errors: list[str] = []
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        rows: list[dict[str, Any]] = []
        with path.open(encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    errors.append(f"line {n}: not JSON ({str(exc)[:100]})")
                    continue
                if not isinstance(row, dict):
                    errors.append(f"line {n}: not a JSON object")
                    continue
                rows.append({**row, "_line": n})
        return pd.DataFrame(rows, dtype=object), errors  # values as JSON gave them (no 1 -> 1.0 beside a gap)

    def bad_line(fields: list[str]) -> None:
        errors.append(f"malformed CSV line ({len(fields)} fields): {','.join(fields)[:100]!r}")
        return None

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, engine="python", on_bad_lines=bad_line)
    return frame.assign(_line=range(2, len(frame) + 2)), errors


def _clean(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v == "":
        return None
    return v


def epoch_unit(value: float) -> str:
    """Pure: the unit of a bare epoch number, by magnitude (seconds until year ~5138, then ms, µs, ns)."""
    size = abs(value)
    return "s" if size < 1e11 else "ms" if size < 1e14 else "us" if size < 1e17 else "ns"


def parse_time(value: Any, tz: str) -> datetime:
    """A timestamp as UTC. Bare numbers (JSON numbers or digit strings) are epoch time in the unit their size
    implies — pandas would read every number as nanoseconds, putting ``1700000000`` in January 1970."""
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        value = float(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return pd.Timestamp(value, unit=epoch_unit(value), tz="UTC").to_pydatetime()
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.tz_convert("UTC").to_pydatetime()


def row_to_item(row: Mapping[str, Any], cols: ColumnMap) -> NewsItem:
    """Pure: one input row → NewsItem (raises ValueError/ValidationError with the reason)."""
    title = _clean(row.get(cols.title))
    if title is None:
        raise ValueError(f"missing title column {cols.title!r}")
    when = _clean(row.get(cols.time))
    if when is None:
        raise ValueError(f"missing time column {cols.time!r}")
    data = {
        "id": str(_clean(row.get(cols.id)) or ""),
        "title": str(title),
        "published_at": parse_time(when, cols.timezone),
        "source": str(_clean(row.get(cols.source)) or cols.default_source),
        "url": _clean(row.get(cols.url)),
        "body": _clean(row.get(cols.body)),
        "tickers": _clean(row.get(cols.tickers)),
    }
    return NewsItem.model_validate(data)


def load_items(path: Path, cols: ColumnMap) -> tuple[list[NewsItem], list[str]]:
    """All valid items ordered by time, plus one error line per rejected row."""
    df, errors = read_rows(path)
    items: list[NewsItem] = []
    for n, row in enumerate(df.to_dict(orient="records"), start=1):
        try:
            items.append(row_to_item(row, cols))
        except (ValueError, ValidationError, TypeError, OverflowError) as exc:
            errors.append(f"row {n} (line {row.get('_line', '?')}): {str(exc).splitlines()[0][:200]}")
    items.sort(key=lambda i: i.published_at)
    return items, errors


def paced(items: list[NewsItem], speed: float, sleep: Any = time.sleep) -> Iterator[NewsItem]:
    """Yield items at ``speed``× the pace of their timestamps (0 = as fast as possible)."""
    if speed <= 0 or not items:
        yield from items
        return
    t0_data = items[0].published_at
    t0_wall = time.monotonic()
    for item in items:
        due = (item.published_at - t0_data).total_seconds() / speed
        ahead = due - (time.monotonic() - t0_wall)
        if ahead > 0:
            sleep(ahead)
        yield item
