"""Counting stories into buckets per alert key: the one implementation behind the scheduler and the backtest.

Input: one row per distinct story (repeats already excluded) with ``published_at`` (UTC), ``sentiment``,
``topic``, ``source`` and ``tickers`` (a tuple of linked keys: cashtags, companies, provisional entities).
The scheduler fills that frame from the database (``queries.load_story_rows``), the backtest from its file;
both then call :func:`count_keys`, so the same history gives the same counts.

Keys: ``overall`` (every story), ``topic:<topic>``, ``ticker:<key>`` and, when the rows carry ``text``,
``term:<word>`` for every content word of the headlines (``monitor.terms``) that has at least ``min_negative``
negative stories in the rows (a key with fewer can never reach the detector's ``min_count``). Parents for the
baseline's shrinkage: every key -> overall (a company's or a word's headlines span many topics, so no single
topic is its parent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from monitor.alerts.detector import KeyCounts
from monitor.terms import story_terms

KeyKind = Literal["overall", "topic", "ticker", "term"]
OVERALL = "all"
STORY_COLUMNS = ("published_at", "sentiment", "topic", "source", "tickers")


@dataclass(frozen=True, slots=True, order=True)
class AlertKey:
    kind: KeyKind
    value: str

    def __str__(self) -> str:
        return OVERALL if self.kind == "overall" else f"{self.kind}:{self.value}"


OVERALL_KEY = AlertKey("overall", OVERALL)


@dataclass(frozen=True, slots=True)
class Counts:
    series: dict[AlertKey, KeyCounts]
    parents: dict[AlertKey, AlertKey | None]
    members: dict[AlertKey, np.ndarray]  # row positions of each key's stories (for headlines)


def bucket_indices(published_at: pd.Series, bucket_seconds: int) -> np.ndarray:
    """Absolute bucket per time (``epoch // bucket_seconds``), the index both paths use."""
    ts = pd.to_datetime(published_at, utc=True)
    seconds = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return (np.asarray(seconds, dtype=np.int64)) // bucket_seconds


def _key_counts(bucket: np.ndarray, negative: np.ndarray, source: np.ndarray | None) -> KeyCounts:
    uniq, inverse = np.unique(bucket, return_inverse=True)
    tot = np.bincount(inverse, minlength=len(uniq)).astype(float)
    neg = np.bincount(inverse, weights=negative.astype(float), minlength=len(uniq))
    order = np.argsort(bucket[negative], kind="stable")
    return KeyCounts(
        uniq,
        neg,
        tot,
        bucket[negative][order],
        None if source is None else source[negative][order],
    )


def count_keys(rows: pd.DataFrame, bucket_seconds: int, min_negative: int = 1, terms: bool = True) -> Counts:
    """Negative and total story counts per bucket for every key the rows mention."""
    if rows.empty:
        empty = KeyCounts(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0))
        return Counts({OVERALL_KEY: empty}, {OVERALL_KEY: None}, {OVERALL_KEY: np.zeros(0, dtype=np.int64)})
    bucket = bucket_indices(rows["published_at"], bucket_seconds)
    negative = (rows["sentiment"] == "negative").to_numpy()
    source = pd.factorize(rows["source"].astype(str))[0]
    members: dict[AlertKey, np.ndarray] = {OVERALL_KEY: np.arange(len(rows))}
    for topic, idx in rows.groupby(rows["topic"].astype(str), sort=True).indices.items():
        members[AlertKey("topic", str(topic))] = np.sort(idx)
    linked = rows["tickers"].explode().dropna()
    positions = pd.Series(np.arange(len(rows)), index=rows.index).loc[linked.index].to_numpy()
    for ticker, idx in pd.Series(positions).groupby(linked.astype(str).to_numpy(), sort=True).indices.items():
        members[AlertKey("ticker", str(ticker))] = np.unique(positions[idx])
    if terms and "text" in rows:
        members.update(_term_members(rows["text"], negative, min_negative))
    series, parents = {}, {}
    for key in sorted(members):
        idx = members[key]
        src = source[idx] if key.kind in ("ticker", "overall") else None
        series[key] = _key_counts(bucket[idx], negative[idx], src)
        parents[key] = None if key == OVERALL_KEY else OVERALL_KEY
    return Counts(series, parents, members)


def _term_members(texts: pd.Series, negative: np.ndarray, min_negative: int) -> dict[AlertKey, np.ndarray]:
    """Row positions per story term, for terms with at least ``min_negative`` negative stories."""
    by_term: dict[str, list[int]] = {}
    for i, text in enumerate(texts.astype(str)):
        for term in story_terms(text):
            by_term.setdefault(term, []).append(i)
    out = {}
    for term, idx in by_term.items():
        pos = np.asarray(idx, dtype=np.int64)
        if int(negative[pos].sum()) >= max(1, min_negative):
            out[AlertKey("term", term)] = pos
    return out


def first_bucket(rows: pd.DataFrame, bucket_seconds: int) -> int | None:
    if rows.empty:
        return None
    return int(bucket_indices(rows["published_at"], bucket_seconds).min())
