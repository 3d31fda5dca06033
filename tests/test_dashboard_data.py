"""The dashboard's data module on real SQLite and PostgreSQL, without Streamlit, plus its pure helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashboards import data, seed
from dashboards.data.headlines import HEADLINE_COLUMNS
from dashboards.model_card import load_model_card, metrics_table
from monitor.schema import NewsItem, Tags
from monitor.store import alerts, init_db, make_engine, upsert_heartbeat, write_batch

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
# title, source, minutes after T0, topic, sentiment, score, tickers
ROWS = [
    ("Oil slumps on glut", "Reuters", 1, "Energy | Oil", "negative", -0.8, ("XOM",)),
    ("Oil slumps on glut!", "Bloomberg", 3, "Energy | Oil", "negative", -0.7, ("XOM",)),  # a repeat
    ("Crude rallies", "Reuters", 10, "Energy | Oil", "positive", 0.6, ("XOM",)),
    ("Bank earnings beat", "CNBC", 65, "Earnings", "positive", 0.7, ("JPM",)),
    ("Bank misses 5% target", "CNBC", 70, "Earnings", "negative", -0.9, ("JPM",)),
    ("Rates up 5 points", "Reuters", 80, "Macro", "neutral", 0.0, ()),
    # The day before: baseline (1 negative of 4) and the tickers' previous window.
    ("Calm day for oil", "Reuters", -24 * 60 + 5, "Energy | Oil", "neutral", 0.0, ("XOM",)),
    ("Oil steady", "Reuters", -24 * 60 + 6, "Energy | Oil", "positive", 0.4, ("XOM",)),
    ("Bank dips", "CNBC", -24 * 60 + 7, "Earnings", "negative", -0.5, ("JPM",)),
    ("Bank steady", "CNBC", -24 * 60 + 8, "Earnings", "neutral", 0.1, ("JPM",)),
]


def _item(title: str, source: str, minutes: float, tickers: tuple[str, ...], **kw: object) -> NewsItem:
    return NewsItem(
        title=title, source=source, tickers=tickers, published_at=T0 + timedelta(minutes=minutes), **kw
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    init_db(eng)
    pairs = [
        (_item(t, s, m, tk, url=f"https://example.com/{i}"), Tags(topic, 0.9, sent, score, 0.8, "v1"))
        for i, (t, s, m, topic, sent, score, tk) in enumerate(ROWS)
    ]
    with eng.begin() as conn:
        write_batch(conn, pairs, timedelta(hours=24), now=T0 + 2 * HOUR)
    yield eng
    eng.dispose()


def window(hours: float = 2) -> data.Filters:
    return data.Filters(T0, T0 + timedelta(hours=hours))


def test_window_for_aligns_start_to_buckets() -> None:
    now = datetime(2026, 1, 5, 12, 7, 31, tzinfo=UTC)
    w = data.window_for("Last 24 hours", now)
    assert (w.end, w.bucket_seconds) == (now, 1800)
    assert w.start == datetime(2026, 1, 4, 12, 0, tzinfo=UTC)
    assert data.window_for("Last hour", now).start == datetime(2026, 1, 5, 11, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", "https://a.example/x"),
        (" http://a.example ", "http://a.example"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("//evil.example", None),
        (None, None),
    ],
)
def test_safe_url_keeps_only_http_links(url: str | None, expected: str | None) -> None:
    assert data.safe_url(url) == expected


def test_sentiment_volume_buckets_topics_and_filters(engine: Engine) -> None:
    with engine.connect() as conn:
        vol = data.sentiment_volume(conn, window(), 3600)
        with_dups = data.sentiment_volume(
            conn, data.Filters(T0, T0 + 2 * HOUR, include_duplicates=True), 3600
        )
        cnbc = data.sentiment_volume(conn, data.Filters(T0, T0 + 2 * HOUR, sources=("CNBC",)), 3600)
        energy = data.sentiment_volume(conn, data.Filters(T0, T0 + 2 * HOUR, topics=("Energy | Oil",)), 3600)
    got = {(b.hour, t, s): n for b, t, s, n in vol.itertuples(index=False)}
    assert got == {
        (12, "Energy | Oil", "negative"): 1,  # the repeat is left out
        (12, "Energy | Oil", "positive"): 1,
        (13, "Earnings", "positive"): 1,
        (13, "Earnings", "negative"): 1,
        (13, "Macro", "neutral"): 1,
    }
    assert str(vol["bucket"].dt.tz) == "UTC"
    assert with_dups["items"].sum() == 6
    assert set(cnbc["topic"]) == {"Earnings"} and cnbc["items"].sum() == 2
    assert set(energy["topic"]) == {"Energy | Oil"}


def test_negative_share_from_volume(engine: Engine) -> None:
    with engine.connect() as conn:
        shares = data.negative_share(data.sentiment_volume(conn, window(), 3600))
    energy = shares[shares["topic"] == "Energy | Oil"].iloc[0]
    assert (energy["items"], energy["negative"], energy["negative_share"]) == (2, 1, 0.5)
    assert data.negative_share(shares.iloc[0:0].rename(columns={})).empty


def test_headline_kpis_against_baseline(engine: Engine) -> None:
    with engine.connect() as conn:
        kpis = data.headline_kpis(conn, window(), T0 - timedelta(days=2)).iloc[0]
        empty = data.headline_kpis(conn, data.Filters(T0 + 10 * HOUR, T0 + 11 * HOUR), T0 + 9 * HOUR).iloc[0]
    assert (kpis["items"], kpis["negative"]) == (5, 2)
    assert kpis["negative_share"] == pytest.approx(0.4)
    assert (kpis["baseline_items"], kpis["baseline_share"]) == (4, 0.25)
    assert empty["items"] == 0 and pd.isna(empty["negative_share"]) and pd.isna(empty["baseline_share"])


def test_headlines_newest_first_paginated_with_tickers(engine: Engine) -> None:
    with engine.connect() as conn:
        first = data.headlines(conn, window(), limit=2)
        second = data.headlines(conn, window(), limit=2, offset=2)
        total = data.count_headlines(conn, window())
    assert first["title"].tolist() == ["Rates up 5 points", "Bank misses 5% target"]
    assert second["title"].tolist() == ["Bank earnings beat", "Crude rallies"]
    assert total == 5
    assert first["tickers"].tolist() == ["", "JPM"]
    assert list(first.columns) == [*HEADLINE_COLUMNS, "tickers", "corrected"]


def test_headline_search_is_literal_and_case_insensitive(engine: Engine) -> None:
    with engine.connect() as conn:
        percent = data.headlines(conn, window(), search="5%")
        upper = data.count_headlines(conn, window(), search="OIL SLUMPS")
        quote = data.count_headlines(conn, window(), search="'; DROP TABLE news_items; --")
        by_ticker = data.headlines(conn, window(), ticker="xom")
        negative = data.count_headlines(conn, window(), sentiments=("negative",))
        capped = data.count_headlines(conn, window(), cap=2)
    assert percent["title"].tolist() == ["Bank misses 5% target"]  # % is not a wildcard
    assert upper == 1 and quote == 0
    assert by_ticker["title"].tolist() == ["Crude rallies", "Oil slumps on glut"]
    assert negative == 2
    assert capped == 3  # "more than 2"


def test_hostile_headline_round_trips_verbatim_and_loses_its_link(engine: Engine) -> None:
    items = seed.seed_known(engine, T0 + HOUR)
    with engine.connect() as conn:
        rows = data.headlines(conn, window(), search="crashes")
        detail = data.headline_detail(conn, items[1].id).iloc[0]
        missing = data.headline_detail(conn, "no-such-id")
    assert rows["title"].tolist() == [seed.HOSTILE_HEADLINE]
    assert rows["url"].isna().all()  # javascript: dropped
    assert detail["title"] == seed.HOSTILE_HEADLINE and detail["tickers"] == "ACME"
    assert detail["body"].startswith("Body of:") and detail["sentiment"] == "negative"
    assert missing.empty


def test_ticker_movers_rank_by_rise_in_negative_share(engine: Engine) -> None:
    with engine.connect() as conn:
        movers = data.ticker_movers(conn, T0, T0 + 24 * HOUR, min_items=2)
        strict = data.ticker_movers(conn, T0, T0 + 24 * HOUR, min_items=3)
    assert movers["ticker"].tolist() == ["XOM", "JPM"]
    xom = movers.iloc[0]  # 1 of 2 unique stories negative now (the repeat is ignored), 0 of 2 before
    assert (xom["items"], xom["negative_share"], xom["prev_negative_share"], xom["share_change"]) == (
        2,
        0.5,
        0.0,
        0.5,
    )
    jpm = movers.iloc[1]  # 1 of 2 now, 1 of 2 before
    assert (jpm["negative_share"], jpm["prev_negative_share"], jpm["share_change"]) == (0.5, 0.5, 0.0)
    assert strict.empty


def test_ticker_trend_per_bucket(engine: Engine) -> None:
    with engine.connect() as conn:
        trend = data.ticker_trend(conn, "jpm", data.Window(T0, T0 + 2 * HOUR, 3600))
        none = data.ticker_trend(conn, "NOPE", data.Window(T0, T0 + 2 * HOUR, 3600))
    assert trend["bucket"].dt.hour.tolist() == [13]
    row = trend.iloc[0]
    assert (row["items"], row["negative"], row["negative_share"]) == (2, 1, 0.5)
    assert row["avg_score"] == pytest.approx(-0.1)
    assert none.empty


def test_alerts_states_numbers_and_headlines(engine: Engine) -> None:
    now = T0 + 2 * HOUR
    rows = [
        seed.demo_alert(now, "topic", "Energy | Oil", "sent", 60),
        seed.demo_alert(now, "ticker", "JPM", "failed", 30),
        seed.demo_alert(now, "overall", "all", "pending", 5) | {"details": "not json"},
    ]
    with engine.begin() as conn:
        conn.execute(alerts.insert(), rows)
    with engine.connect() as conn:
        fired = data.fired_alerts(conn, T0, now)
        failed = data.fired_alerts(conn, T0, now, states=("failed",))
        counts = data.alert_state_counts(conn, T0, now)
        behind_topic = data.alert_headlines(conn, "topic", "Energy | Oil", T0, T0 + HOUR)
        behind_ticker = data.alert_headlines(conn, "ticker", "JPM", T0, T0 + 2 * HOUR)
        behind_all = data.alert_headlines(conn, "overall", "all", T0, T0 + 2 * HOUR)
        behind_term = data.alert_headlines(conn, "term", "bank", T0, T0 + 2 * HOUR)
    assert fired["state"].tolist() == ["pending", "failed", "sent"]  # newest first
    assert failed["key_value"].tolist() == ["JPM"] and failed.iloc[0]["last_error"]
    assert dict(zip(counts["state"], counts["alerts"], strict=True)) == {"failed": 1, "pending": 1, "sent": 1}
    numbers = data.with_alert_numbers(fired)
    assert numbers.loc[numbers["state"] == "sent", "share"].iloc[0] == 0.71
    assert pd.isna(numbers.loc[numbers["state"] == "pending", "z"].iloc[0])  # bad JSON adds nothing
    assert behind_topic["title"].tolist() == ["Oil slumps on glut", "Crude rallies"]  # most negative first
    assert behind_ticker["title"].tolist() == ["Bank misses 5% target", "Bank earnings beat"]
    assert len(behind_all) == 5
    assert behind_term["title"].tolist() == [
        "Bank misses 5% target",
        "Bank earnings beat",
    ]  # story term "bank"


def test_system_tables_heartbeats_and_size(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        upsert_heartbeat(
            conn,
            {
                "worker_id": "w1",
                "updated_at": T0,
                "model_version": "v1",
                "items_total": 10,
                "dlq_total": 2,
                "items_per_second": 5.5,
                "lag": 7,
                "last_batch_ms": 120.0,
            },
        )
    with engine.connect() as conn:
        beats = data.worker_heartbeats_frame(conn)
        stats = data.table_stats(conn).set_index("table")
        size = data.database_size_bytes(conn)
        assert data.missing_tables(conn) == []
    assert beats[["worker_id", "dlq_total", "lag"]].values.tolist() == [["w1", 2, 7]]
    assert stats.loc["news_items", "rows"] == 10 and stats.loc["alerts", "rows"] == 0
    assert stats.loc["news_items", "latest"] == T0 + timedelta(minutes=80)
    assert pd.isna(stats.loc["alerts", "latest"])
    assert size and size > 0
    blank = make_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    with blank.connect() as conn:
        assert data.missing_tables(conn) == list(data.REQUIRED_TABLES)


def test_model_card_is_read_defensively(tmp_path: Path) -> None:
    assert not load_model_card(str(tmp_path / "absent")).available
    (tmp_path / "model_card.json").write_text("{not json")
    broken = load_model_card(str(tmp_path))
    assert not broken.available and "cannot read" in broken.reason
    (tmp_path / "model_card.json").write_text("[1, 2]")
    assert not load_model_card(str(tmp_path)).available
    card = REAL_SHAPED_CARD
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    loaded = load_model_card(str(tmp_path))
    assert loaded.available
    assert loaded.summary["model"] == "finpulse-smollm2-lora"
    assert loaded.summary["base_model"] == "SmolLM2-135M-Instruct"
    assert loaded.summary["labels"] == "topic: 20, sentiment: 3"
    assert loaded.summary["examples"] == "train: 9000, validation: 1000"
    assert "per_class" not in " ".join(loaded.metrics["metric"])  # per-class figures stay in the card
    table = metrics_table(loaded.metrics)
    assert list(table.index) == ["fpb", "tweets-topic"]
    assert table.loc["fpb", "macro_f1"] == 0.84 and table.loc["tweets-topic", "accuracy"] == 0.9
    assert pd.isna(table.loc["tweets-topic", "ece"])
    odd = pd.DataFrame({"metric": ["test.f1", "validation.a.b"], "value": [0.5, 0.7]})
    assert list(metrics_table(odd).index) == ["test.f1", "validation.a.b"]


# The shape training/card.py writes (model_card.json).
REAL_SHAPED_CARD = {
    "model": "finpulse-smollm2-lora", "date": "2026-11-29T01:00:00Z",
    "base_model": {"name": "SmolLM2-135M-Instruct", "licence": "Apache-2.0"},
    "labels": {"topic": [f"t{i}" for i in range(20)], "sentiment": ["negative", "neutral", "positive"]},
    "examples": {"train": 9000, "validation": 1000},
    "validation": {
        "fpb": {"task": "sentiment", "accuracy": 0.86, "weighted_f1": 0.85, "macro_f1": 0.84, "n": 400,
                "ece": 0.05, "per_class": {"negative": {"precision": 0.8, "recall": 0.7, "f1": 0.75}}},
        "tweets-topic": {"task": "topic", "accuracy": 0.9, "weighted_f1": 0.89, "macro_f1": 0.81, "n": 600},
    },
    "history": [{"epoch": 1, "loss": 0.5}], "timings_s": {"train": 100.0},
}  # fmt: skip


@pytest.mark.slow
def test_data_functions_stay_fast_on_200k_rows(db_url: str) -> None:
    """200k items over 30 days: every page query aggregates in SQL (timings printed with -s)."""
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    seed.seed_demo(engine, 200_000, now)
    print(f"\n{engine.dialect.name}: seed 200k: {time.perf_counter() - started:.1f}s")
    timings = measure_queries(engine, now)
    for name, seconds in timings.items():
        print(f"{name:>40}: {1000 * seconds:7.1f} ms")
    assert max(timings.values()) < 10  # generous: the point is no query reads everything into pandas


def measure_queries(engine: Engine, now: datetime) -> dict[str, float]:
    timings: dict[str, float] = {}
    with engine.connect() as conn:
        for label in ("Last 24 hours", "Last 30 days"):
            timings |= time_page_queries(conn, label, data.window_for(label, now))
        started = time.perf_counter()
        data.table_stats(conn)
        data.list_sources(conn)
        timings["table_stats + list_sources"] = time.perf_counter() - started
    return timings


def time_page_queries(conn: sa.Connection, label: str, w: data.Window) -> dict[str, float]:
    f = data.Filters(w.start, w.end)
    calls = {
        "sentiment_volume": lambda: data.sentiment_volume(conn, f, w.bucket_seconds),
        "headline_kpis": lambda: data.headline_kpis(conn, f, w.start - timedelta(days=28)),
        "count_headlines": lambda: data.count_headlines(conn, f),
        "headlines page 1": lambda: data.headlines(conn, f),
        "headlines search p11": lambda: data.headlines(conn, f, search="slumps", offset=500),
        "count search (no match)": lambda: data.count_headlines(conn, f, search="zzz-nothing"),
        "ticker_movers": lambda: data.ticker_movers(conn, w.start, w.end),
        "ticker_trend": lambda: data.ticker_trend(conn, "XOM", w),
        "fired_alerts": lambda: data.fired_alerts(conn, w.start, w.end),
    }
    timings = {}
    for name, call in calls.items():
        started = time.perf_counter()
        call()
        timings[f"{label} {name}"] = time.perf_counter() - started
    volume = data.sentiment_volume(conn, f, w.bucket_seconds)
    assert volume["items"].sum() == data.headline_kpis(conn, f, w.start).iloc[0]["items"]
    return timings


def test_queries_use_bound_parameters(engine: Engine) -> None:
    """No value is inlined into the SQL text: a quote in a search string is just data."""
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with engine.connect() as conn:
        data.count_headlines(conn, window(), search="O'Brien")
        data.headlines(conn, window(), search="O'Brien", ticker="XOM", sentiments=("negative",))
    assert seen and not any("O'Brien" in sql or "XOM" in sql for sql in seen)
