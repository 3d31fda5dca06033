"""Pure pieces of the worker and ingest paths (no broker, no database)."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import TopicPartition

from monitor.ingest.demo import DemoConfig, backfill, live, make_headline
from monitor.ingest.replay import ColumnMap, load_items, paced, row_to_item
from monitor.schema import Limits, NewsItem, ParseError, Tags
from monitor.worker import (
    RawRecord,
    classify_safely,
    commit_offsets,
    decode_batch,
    derive_max_poll_interval_ms,
    dlq_headers,
    first_offsets,
    tagged_message,
)

GOOD = json.dumps({"title": "A", "source": "s", "published_at": "2024-01-01T00:00:00Z"}).encode()


def rec(p: int, off: int, value: bytes | None = GOOD) -> RawRecord:
    return RawRecord("raw", p, off, None, value)


def test_max_poll_interval_grows_with_the_batch_budget() -> None:
    assert derive_max_poll_interval_ms(8, 100, 0.1) == 300_000  # never below Kafka's default
    big = derive_max_poll_interval_ms(1024, 500, 2.0)
    assert big == int(2 * 1024 * 2.0 * 1000 + 500 + 30_000)


def test_offsets_to_commit_are_per_partition_max_plus_one() -> None:
    batch = [rec(0, 5), rec(1, 9), rec(0, 7), rec(0, 6)]
    assert commit_offsets(batch) == {TopicPartition("raw", 0): 8, TopicPartition("raw", 1): 10}
    assert first_offsets(batch) == {TopicPartition("raw", 0): 5, TopicPartition("raw", 1): 9}


def test_decode_splits_good_and_bad_and_keeps_order() -> None:
    out = decode_batch([rec(0, 1), rec(0, 2, b"{"), rec(0, 3, None), rec(0, 4)], Limits())
    assert [r.offset for r, _ in out.good] == [1, 4]
    assert [(r.offset, e.reason.split(":")[0]) for r, e in out.bad] == [
        (2, "not JSON"),
        (3, "empty message (tombstone)"),
    ]
    headers = dict(dlq_headers(out.bad[0][0], out.bad[0][1].reason))
    assert headers["source_offset"] == b"2" and headers["source_topic"] == b"raw"


class Flaky:
    version = "flaky"

    def predict(self, texts: list[str]) -> list[Tags]:
        if any("poison" in t for t in texts):
            raise RuntimeError("boom")
        return [Tags("Markets", 0.5, "neutral", 0.0, 0.5, self.version) for _ in texts]


def test_one_poisonous_text_goes_to_the_dlq_not_the_whole_batch() -> None:
    items = [
        NewsItem(title=t, source="s", published_at=datetime(2024, 1, 1, tzinfo=UTC))
        for t in ("fine", "poison pill", "also fine")
    ]
    out = classify_safely(Flaky(), items)
    assert isinstance(out[0], Tags) and isinstance(out[2], Tags)
    assert isinstance(out[1], ParseError) and "classifier error" in out[1].reason


def test_tagged_message_carries_item_and_tags_without_body() -> None:
    item = NewsItem(title="T", body="long body", source="s", published_at=datetime(2024, 1, 1, tzinfo=UTC))
    msg = json.loads(tagged_message(item, Tags("Earnings", 0.9, "positive", 0.8, 0.9, "v")))
    assert msg["topic"] == "Earnings" and msg["id"] == item.id and "body" not in msg


def test_replay_maps_columns_sorts_by_time_and_reports_bad_rows(tmp_path: Path) -> None:
    src = tmp_path / "h.csv"
    src.write_text(
        "headline,date,feed,link,syms\n"
        'Later news,2020-03-02 10:00,F,https://x/2,"AAPL,MSFT"\n'
        "Earlier news,2020-03-01 09:00,F,,\n"
        ",2020-03-01 09:00,F,,\n"
        "No date,,F,,\n"
    )
    cols = ColumnMap(
        title="headline", time="date", source="feed", url="link", tickers="syms", timezone="America/New_York"
    )
    items, errors = load_items(src, cols)
    assert [i.title for i in items] == ["Earlier news", "Later news"]
    assert items[1].tickers == ("AAPL", "MSFT") and items[1].url == "https://x/2"
    assert items[0].published_at == datetime(2020, 3, 1, 14, 0, tzinfo=UTC)
    assert len(errors) == 2 and "row 3" in errors[0] and "row 4" in errors[1]
    with pytest.raises(ValueError, match="missing title"):
        row_to_item({"date": "2020-01-01"}, cols)


def test_paced_replay_sleeps_by_the_data_clock() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    items = [
        NewsItem(title=str(i), source="s", published_at=t0 + timedelta(seconds=10 * i)) for i in range(3)
    ]
    slept: list[float] = []
    assert [i.title for i in paced(items, 10.0, sleep=slept.append)] == ["0", "1", "2"]
    # due times are measured from the start (a fake sleep does not advance the clock): 1 s, then 2 s
    assert len(slept) == 2 and 0.9 < slept[0] <= 1.0 and 1.9 < slept[1] <= 2.0
    assert list(paced(items, 0, sleep=slept.append)) == items and len(slept) == 2


def test_demo_stream_has_history_tickers_and_an_incident() -> None:
    now = datetime(2024, 1, 1, 12, tzinfo=UTC)
    hist = backfill(DemoConfig(backfill_hours=2, backfill_rate_per_minute=1), now)
    assert 60 <= len(hist) <= 180 and all(i.published_at < now for i in hist)
    assert len({i.id for i in hist}) == len(hist)
    rng = random.Random(1)
    assert any(make_headline(rng, now, 0.2, n).tickers for n in range(20))
    clock = {"t": now}

    def tick() -> datetime:
        clock["t"] += timedelta(seconds=1)
        return clock["t"]

    class NoWait(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            return False

    cfg = DemoConfig(
        rate_per_minute=60,
        incident_ticker="BA",
        incident_after_s=0,
        incident_duration_s=10_000,
        incident_rate_per_minute=600,
    )
    stream = live(cfg, tick, NoWait())
    sample = [next(stream) for _ in range(200)]
    boeing = [i for i in sample if i.tickers == ("BA",)]
    assert len(boeing) > 150  # the incident dominates while it lasts
