"""Replay a historical headline file in simulated time through the tags and the detector.

Repeats are dropped with the worker's rule, stories are counted per key with the scheduler's code
(``counting``; keys: overall, topics, and the entities ``attach_entities`` links, or cashtags without it),
and the detector's episode machine runs over the whole history at once. Decisions are causal
and read a bounded history, so this gives exactly the alerts a live scheduler would have raised at each bucket
end (``fired_at`` = the bucket end at which it would have fired).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.alerts.counting import AlertKey, bucket_indices, count_keys, first_bucket
from monitor.alerts.detector import Spike
from monitor.alerts.episodes import scan_keys
from monitor.alerts.params import DetectorParams
from monitor.emerging import EmergingNames, Story, link_stories
from monitor.entities import EntityLinker
from monitor.errors import ConfigError
from monitor.schema import Tags, extract_cashtags, find_repeats, story_key

REPEAT_WINDOW = timedelta(hours=24)  # the worker's default (FINPULSE_WORKER_DUPLICATE_WINDOW_HOURS)
TIME_COLUMNS = ("published_at", "timestamp", "time", "date", "datetime")
TEXT_COLUMNS = ("title", "headline", "headlines", "text")
_ET_RE = re.compile(r"\b(?:ET|EST|EDT)\b")


@dataclass(frozen=True, slots=True)
class BacktestAlert:
    key: AlertKey
    spike: Spike
    headlines: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        s = self.spike
        return {
            "key": str(self.key),
            "window_start": s.window_start.isoformat(),
            "window_end": s.window_end.isoformat(),
            "fired_at": s.window_end.isoformat(),
            "severity": s.severity,
            "count": s.count,
            "expected": s.expected,
            "p_value": s.p_value,
            "evidence": s.evidence,
            "total": s.total,
            "share": s.share,
            **s.details,
            "explanation": s.explanation(),
            "headlines": list(self.headlines),
        }


def pick_column(frame: pd.DataFrame, wanted: str | None, candidates: Sequence[str], what: str) -> str:
    if wanted:
        if wanted not in frame.columns:
            raise ConfigError(
                f"--{what}-column {wanted!r} not in the CSV (columns: {', '.join(frame.columns)})"
            )
        return wanted
    lower = {c.lower().strip(): c for c in frame.columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise ConfigError(f"no {what} column found; pass --{what}-column (columns: {', '.join(frame.columns)})")


def parse_times(values: pd.Series) -> pd.Series:
    """Mixed-format timestamps as UTC; strings marked ET are read as America/New_York (CNBC style)."""
    text = values.astype(str).str.strip()
    eastern = text.str.contains(_ET_RE)
    cleaned = text.str.replace(_ET_RE, "", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    parsed = pd.to_datetime(cleaned, format="mixed", errors="coerce", utc=False)
    out = []
    for ts, is_et in zip(parsed, eastern, strict=True):
        if pd.isna(ts):
            out.append(pd.NaT)
        elif ts.tzinfo is not None:
            out.append(ts.tz_convert("UTC"))
        else:
            out.append(
                ts.tz_localize("America/New_York").tz_convert("UTC") if is_et else ts.tz_localize("UTC")
            )
    return pd.Series(pd.to_datetime(out, utc=True), index=values.index)


def read_headlines(path: Path, time_column: str | None, text_column: str | None) -> pd.DataFrame:
    """``published_at`` (UTC) and ``text`` per row, blank and unparseable rows dropped, in file order."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    tcol = pick_column(raw, time_column, TIME_COLUMNS, "time")
    xcol = pick_column(raw, text_column, TEXT_COLUMNS, "text")
    frame = pd.DataFrame(
        {"published_at": parse_times(raw[tcol]), "text": raw[xcol].str.strip(), "row": np.arange(len(raw))}
    )
    frame = frame[(frame["text"] != "") & frame["published_at"].notna()].reset_index(drop=True)
    frame.attrs["csv_rows"] = len(raw)
    return frame


def read_tags_jsonl(path: Path, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Precomputed tags in file order (``sentiment`` required, ``topic``, ``sentiment_score``): one line per
    CSV data row, or one per kept row (blank and undated rows dropped)."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    csv_rows = int(frame.attrs.get("csv_rows", len(frame)))
    if len(lines) == csv_rows and len(lines) != len(frame):
        lines = [lines[int(r)] for r in frame["row"]]
    elif len(lines) != len(frame):
        raise ConfigError(
            f"{path}: {len(lines)} tag lines, expected one per CSV row ({csv_rows}) "
            f"or per kept row ({len(frame)})"
        )
    for i, row in enumerate(lines):
        if row.get("sentiment") not in ("negative", "neutral", "positive"):
            raise ConfigError(f"{path}: line {i + 1} has no valid 'sentiment'")
    return lines


def tags_from_classifier(
    texts: Sequence[str], predict: Callable[[Sequence[str]], list[Tags]], batch_size: int = 64
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        out.extend(t.as_dict() for t in predict(texts[start : start + batch_size]))
    return out


def drop_repeats(frame: pd.DataFrame, window: timedelta = REPEAT_WINDOW) -> pd.DataFrame:
    """Rows that are not repeats of a story seen within ``window`` (the worker's rule, ``find_repeats``)."""
    ids = [f"{i:012d}" for i in range(len(frame))]
    stories = zip(ids, (story_key(t) for t in frame["text"]), frame["published_at"], strict=True)
    repeats = find_repeats(((i, k, ts.to_pydatetime()) for i, k, ts in stories), {}, window)
    keep = np.array([i not in repeats for i in ids], dtype=bool)
    return frame[keep].sort_values("published_at", kind="stable")


def story_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as ``counting`` reads it: tickers from cashtags unless a ``tickers`` column is given."""
    rows = frame.copy()
    if "source" not in rows:
        rows["source"] = "file"
    if "tickers" not in rows:
        linked = (
            rows["entities"] if "entities" in rows else (tuple(extract_cashtags(t)) for t in rows["text"])
        )
        rows["tickers"] = [tuple(keys) for keys in linked]
    return rows


def headlines_for(rows: pd.DataFrame, spike: Spike, limit: int) -> list[dict[str, Any]]:
    """The most negative distinct headlines behind an alert (as ``queries.top_negative_headlines``)."""
    inside = rows[
        (rows["published_at"] >= spike.window_start)
        & (rows["published_at"] < spike.window_end)
        & (rows["sentiment"] == "negative")
    ]
    inside = inside.assign(_t=-inside["published_at"].astype("int64"))
    worst = inside.sort_values(["sentiment_score", "_t"], kind="stable").head(limit)
    return [
        {
            "title": r.text,
            "url": getattr(r, "url", None) or None,
            "source": r.source,
            "published_at": r.published_at.isoformat(),
            "score": round(float(r.sentiment_score), 3),
        }
        for r in worst.itertuples()
    ]


def run_backtest(
    frame: pd.DataFrame,
    params: DetectorParams,
    headlines_per_alert: int = 5,
    repeat_window: timedelta = REPEAT_WINDOW,
) -> list[BacktestAlert]:
    """All alerts over the file's history, in firing order (the scheduler's code on the file's stories)."""
    if frame.empty:
        return []
    rows = story_rows(drop_repeats(frame, repeat_window)).reset_index(drop=True)
    counts = count_keys(rows, params.bucket_seconds, params.min_count, params.term_keys)
    history = first_bucket(rows, params.bucket_seconds)
    assert history is not None
    end = int(bucket_indices(rows["published_at"], params.bucket_seconds).max()) + 1
    found = scan_keys(counts.series, counts.parents, params, history, end)
    return [
        BacktestAlert(
            key, spike, tuple(headlines_for(rows.iloc[counts.members[key]], spike, headlines_per_alert))
        )
        for key, spike in found
    ]


def summarise(alerts: Iterable[BacktestAlert], frame: pd.DataFrame) -> dict[str, Any]:
    alerts = list(alerts)
    by_kind: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for a in alerts:
        by_kind[a.key.kind] = by_kind.get(a.key.kind, 0) + 1
        by_severity[a.spike.severity] = by_severity.get(a.spike.severity, 0) + 1
    months: dict[str, int] = {}
    for a in alerts:
        m = a.spike.window_end.strftime("%Y-%m")
        months[m] = months.get(m, 0) + 1
    return {
        "rows": int(len(frame)),
        "negative_share": round(float((frame["sentiment"] == "negative").mean()), 3) if len(frame) else 0.0,
        "from": frame["published_at"].min().isoformat() if len(frame) else None,
        "to": frame["published_at"].max().isoformat() if len(frame) else None,
        "alerts": len(alerts),
        "by_kind": by_kind,
        "by_severity": by_severity,
        "by_month": months,
    }


def attach_entities(
    frame: pd.DataFrame, linker: EntityLinker, emerging: EmergingNames | None = None
) -> pd.DataFrame:
    """Add ``entities``: the keys each row links to (cashtags, dictionary names, provisional names), linked
    in time order exactly as the worker links its batches."""
    stories = [
        Story(t, story_key(t), ts.to_pydatetime())
        for t, ts in zip(frame["text"], frame["published_at"], strict=True)
    ]
    out = frame.copy()
    out["entities"] = [tuple(e.key for e in links) for links in link_stories(linker, emerging, stories)]
    return out


def attach_tags(frame: pd.DataFrame, tags: Sequence[dict[str, Any]]) -> pd.DataFrame:
    out = frame.copy()
    out["sentiment"] = [t["sentiment"] for t in tags]
    out["topic"] = [t.get("topic") or "unknown" for t in tags]
    out["sentiment_score"] = [
        float(t.get("sentiment_score", -1.0 if t["sentiment"] == "negative" else 0.0)) for t in tags
    ]
    return out


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
