"""Replay a historical headline file in simulated time through the tags and the detector.

Rows are bucketed per key (overall, topic, linked entity with enough volume: ``attach_entities``, or
cashtags only without it); the detector is causal, so scanning the whole history at once gives exactly the
alerts a live scheduler would have raised at each bucket end (``fired_at`` = the bucket end at which it would have fired). Repeated headlines within 24 h are
dropped as the worker does.
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

from monitor.alerts.detector import CountSeries, DetectorParams, Spike, scan
from monitor.alerts.queries import OVERALL, AlertKey
from monitor.emerging import EmergingNames, Story, link_stories
from monitor.entities import EntityLinker
from monitor.errors import ConfigError
from monitor.schema import Tags, extract_cashtags, story_key

TIME_COLUMNS = ("published_at", "timestamp", "time", "date", "datetime")
TEXT_COLUMNS = ("title", "headline", "headlines", "text")
_ET_RE = re.compile(r"\b(?:ET|EST|EDT)\b")


@dataclass(frozen=True, slots=True)
class BacktestAlert:
    key: AlertKey
    spike: Spike
    headlines: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        s = self.spike
        return {
            "key": str(self.key),
            "window_start": s.window_start.isoformat(),
            "window_end": s.window_end.isoformat(),
            "fired_at": s.window_end.isoformat(),
            "severity": s.severity,
            "count": s.count,
            "baseline": s.baseline,
            "z": s.z,
            "p_value": s.p_value,
            "surprise": s.surprise,
            "total": s.total,
            "share": s.share,
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


def drop_repeats(frame: pd.DataFrame, window: timedelta = timedelta(hours=24)) -> pd.DataFrame:
    """Drop rows repeating a story (same normalised headline) seen within ``window`` before."""
    frame = frame.sort_values("published_at", kind="stable").copy()
    frame["story"] = [story_key(t) for t in frame["text"]]
    last_seen: dict[str, pd.Timestamp] = {}
    keep = []
    for story, ts in zip(frame["story"], frame["published_at"], strict=True):
        prev = last_seen.get(story)
        keep.append(prev is None or ts - prev > window)
        if keep[-1]:
            last_seen[story] = ts
    return frame[np.asarray(keep)].drop(columns="story")


def build_series(
    frame: pd.DataFrame, bucket_seconds: int, ticker_min_volume: int
) -> tuple[dict[AlertKey, CountSeries], dict[AlertKey, np.ndarray]]:
    """Count series per key from rows with ``published_at``, ``text``, ``sentiment``, ``topic``; plus the row
    indices of each key (for headlines). Buckets start at a UTC midnight so time-of-day lags line up."""
    t0 = frame["published_at"].min().floor("D")
    secs = (frame["published_at"] - t0).dt.total_seconds().to_numpy()
    bucket = (secs // bucket_seconds).astype(np.int64)
    n = int(bucket.max()) + 1
    negative = (frame["sentiment"] == "negative").to_numpy()
    members: dict[AlertKey, list[int]] = {AlertKey("overall", OVERALL): list(range(len(frame)))}
    for i, topic in enumerate(frame["topic"]):
        members.setdefault(AlertKey("topic", str(topic)), []).append(i)
    tickers: dict[str, list[int]] = {}
    linked = frame["entities"] if "entities" in frame else (extract_cashtags(t) for t in frame["text"])
    for i, keys in enumerate(linked):
        for t in keys:
            tickers.setdefault(t, []).append(i)
    for t, rows in tickers.items():
        if len(rows) >= ticker_min_volume:
            members[AlertKey("ticker", t)] = rows
    start = t0.to_pydatetime().astimezone(UTC)
    series, index = {}, {}
    for key, rows in sorted(members.items()):
        idx = np.asarray(rows, dtype=np.int64)
        tot = np.bincount(bucket[idx], minlength=n)
        neg = np.bincount(bucket[idx], weights=negative[idx].astype(float), minlength=n).astype(np.int64)
        series[key], index[key] = CountSeries(start, bucket_seconds, neg, tot), idx
    return series, index


def run_backtest(
    frame: pd.DataFrame, params: DetectorParams, ticker_min_volume: int = 20, headlines_per_alert: int = 3
) -> list[BacktestAlert]:
    """All alerts over the file's history, in firing order."""
    if frame.empty:
        return []
    frame = drop_repeats(frame).reset_index(drop=True)
    series, index = build_series(frame, params.bucket_seconds, ticker_min_volume)
    found: list[BacktestAlert] = []
    for key, s in series.items():
        spikes, _ = scan(s, params)
        rows = frame.iloc[index[key]]
        for spike in spikes:
            in_window = rows[
                (rows["published_at"] >= spike.window_start)
                & (rows["published_at"] < spike.window_end)
                & (rows["sentiment"] == "negative")
            ]
            worst = (
                in_window.sort_values("sentiment_score", kind="stable").head(headlines_per_alert)
                if "sentiment_score" in rows
                else in_window.head(headlines_per_alert)
            )
            found.append(BacktestAlert(key, spike, tuple(worst["text"])))
    return sorted(found, key=lambda a: (a.spike.window_end, str(a.key)))


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
    stories = [Story(t, story_key(t), ts.to_pydatetime()) for t, ts in zip(frame["text"], frame["published_at"],
                                                                          strict=True)]
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
