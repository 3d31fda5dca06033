"""One detector, two paths: a file replayed through the live scheduler path in simulated time (items written to
a real SQLite database as they are published, ``detect_new_alerts`` every six hours) gives exactly the
alerts ``alerts backtest`` gives on the same file, and the counts behind them are the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.alerts.backtest import drop_repeats, run_backtest, story_rows
from monitor.alerts.counting import count_keys
from monitor.alerts.queries import list_alerts, load_story_rows
from monitor.alerts.service import detect_new_alerts, params_from_settings
from monitor.schema import NewsItem, Tags
from monitor.settings import AlertSettings
from monitor.store import init_db, make_engine, write_batch
from monitor.terms import story_terms

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
DAYS = 12
SETTINGS = AlertSettings(bucket_seconds=900, baseline_days=7, min_history_days=2, catch_up_minutes=360)
WINDOW = timedelta(hours=24)


def history() -> pd.DataFrame:
    """Two sources, two topics, a few cashtags; repeated headlines; an ACME crisis on day 10 and a broad
    Markets sell-off on day 8."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(DAYS * 24 * 3):  # three stories an hour
        t = START + timedelta(minutes=20 * i + int(rng.integers(0, 20)))
        topic = "Markets" if i % 3 else "Tech"
        neg = rng.random() < 0.25
        text = f"Update {i % 400} on {topic.lower()}" + (" $ACME" if i % 17 == 0 else "")
        if i % 50 == 1:  # a repeat of the previous headline, 20 minutes later
            text = rows[-1][1]
        rows.append((t, text, "negative" if neg else "neutral", topic, f"wire{i % 2}"))
    for k in range(12):
        t = START + timedelta(days=10, hours=14, minutes=4 * k)
        rows.append(
            (t, f"ACME {k} misses payments as lenders walk away $ACME", "negative", "Markets", f"wire{k % 2}")
        )
    for k in range(30):
        t = START + timedelta(days=8, hours=9, minutes=5 * k)
        rows.append((t, f"Stocks slide {k} as rout deepens", "negative", "Markets", "wire0"))
    frame = pd.DataFrame(rows, columns=["published_at", "text", "sentiment", "topic", "source"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    frame["sentiment_score"] = np.where(frame["sentiment"] == "negative", -0.9, 0.0)
    frame["url"] = [f"https://news.example/{i}" for i in range(len(frame))]
    return frame.sort_values("published_at", kind="stable").reset_index(drop=True)


def pairs(frame: pd.DataFrame) -> list[tuple[NewsItem, Tags]]:
    return [
        (
            NewsItem(id=f"n{r.Index}", published_at=r.published_at, source=r.source, title=r.text, url=r.url),
            Tags(r.topic, 0.9, r.sentiment, float(r.sentiment_score), 0.9, "test"),
        )
        for r in frame.itertuples()
    ]


def signature(key: object, window_start: datetime, window_end: datetime, severity: str, count: int) -> tuple:  # type: ignore[type-arg]
    return (str(key), window_start.astimezone(UTC), window_end.astimezone(UTC), severity, count)


def test_live_replay_in_simulated_time_gives_the_backtest_alerts(tmp_path: Path) -> None:
    frame = history()
    params = params_from_settings(SETTINGS)
    expected = [
        signature(a.key, a.spike.window_start, a.spike.window_end, a.spike.severity, a.spike.count)
        for a in run_backtest(frame, params, repeat_window=WINDOW)
    ]
    backtest = run_backtest(frame, params, repeat_window=WINDOW)
    # the test has something to compare: an entity, a topic and a story term ("lender", from the ACME crisis)
    assert {k for k, *_ in expected} >= {"ticker:ACME", "topic:Markets", "term:lender"}

    engine = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    init_db(engine)
    now, written = START, 0
    while now <= START + timedelta(days=DAYS + 1):
        now += timedelta(hours=6)
        due = frame[(frame["published_at"] < now)].iloc[written:]
        with engine.begin() as conn:
            write_batch(conn, pairs(due), WINDOW, now=now)
        written += len(due)
        detect_new_alerts(engine, now, params, SETTINGS)
    with engine.connect() as conn:
        stored = list_alerts(conn, limit=1000)
        live_rows = load_story_rows(conn, START - timedelta(days=1), START + timedelta(days=DAYS + 1))
    engine.dispose()
    live = sorted(
        (signature(a.key, a.window_start, a.window_end, a.severity, a.details["count"]) for a in stored),
        key=lambda s: (s[2], s[0]),
    )
    assert live == sorted(expected, key=lambda s: (s[2], s[0]))
    # A term key's headlines are the ones whose terms hold the word, on both paths.
    titles = {(str(a.key), a.spike.window_end): [h["title"] for h in a.headlines] for a in backtest}
    for a in stored:
        if a.key.kind == "term":
            got = [h["title"] for h in a.details["headlines"]]
            assert got == titles[(str(a.key), a.window_end.astimezone(UTC))] and got
            assert all(a.key.value in story_terms(t) for t in got)

    # The same history gives the same counts through the database path and the file path.
    from_db = count_keys(live_rows, params.bucket_seconds, params.min_count)
    from_file = count_keys(
        story_rows(drop_repeats(frame, WINDOW)).reset_index(drop=True),
        params.bucket_seconds,
        params.min_count,
    )
    assert from_db.series.keys() == from_file.series.keys()
    for key, kc in from_file.series.items():
        other = from_db.series[key]
        assert np.array_equal(kc.buckets, other.buckets), key
        assert np.array_equal(kc.negative, other.negative) and np.array_equal(kc.total, other.total), key


@pytest.mark.parametrize("window_hours", [24.0, 0.1])
def test_the_backtest_drops_repeats_with_the_workers_rule(window_hours: float) -> None:
    from monitor.store import find_duplicates

    frame = history().head(600)
    window = timedelta(hours=window_hours)
    kept = drop_repeats(frame, window)
    items = [p[0] for p in pairs(frame)]
    repeats = find_duplicates(items, {}, window)
    assert len(kept) == len(frame) - len(repeats)
    assert len(repeats) > 0 if window_hours > 1 else len(repeats) < 8  # a short window catches few
