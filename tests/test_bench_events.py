"""The event benchmark's parts on known cases: feed parsing traps and the scorer (pure, no model)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from monitor.bench.events import AlertRecord, MarketEvent, load_events, score_feed
from monitor.bench.feeds import FeedSpec, clean_headline, read_feed
from monitor.bench.tagcache import cached_tags, load_cache
from monitor.schema import Tags

EVENT = MarketEvent(
    "acme", "ACME collapse", date(2020, 3, 9), date(2020, 3, 10), re.compile("acme", re.I), ""
)


def stories(*rows: tuple[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["published_at", "text"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    return frame


FEED = stories(
    ("2020-01-01 10:00", "Quiet start"),
    ("2020-03-09 08:00", "ACME warns on debt"),
    ("2020-03-09 12:00", "ACME shares halted"),
    ("2020-03-10 09:00", "ACME files for bankruptcy"),
    ("2020-05-30 10:00", "Quiet end"),
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_alert_on_the_event_counts_with_hours_from_the_first_story() -> None:
    alerts = [
        AlertRecord(at("2020-03-09 02:00"), "all", ("Stocks drift",)),  # inside, but not about it
        AlertRecord(at("2020-03-09 14:00"), "ticker:ACME", ("ACME shares halted",)),
    ]
    r = score_feed("f", [EVENT], FEED, alerts).events[0]
    assert r.covered and r.caught and r.key == "ticker:ACME" and r.stories == 3
    assert r.hours == pytest.approx(6.0)


def test_off_topic_alerts_miss_and_thin_coverage_is_not_counted() -> None:
    alerts = [AlertRecord(at("2020-03-09 14:00"), "all", ("Stocks drift",))]
    r = score_feed("f", [EVENT], FEED, alerts).events[0]
    assert r.covered and not r.caught
    thin = score_feed("f", [EVENT], FEED.drop(index=[1, 2]), []).events[0]
    assert not thin.covered and thin.stories == 1


def test_false_alarm_days_per_month_outside_event_windows() -> None:
    alerts = [
        AlertRecord(at("2020-02-01 10:00"), "all", ("x",)),
        AlertRecord(at("2020-02-01 18:00"), "topic:Markets", ("y",)),  # same day: one alert-day
        AlertRecord(at("2020-04-02 10:00"), "all", ("z",)),
        AlertRecord(at("2020-03-11 00:30"), "ticker:ACME", ("ACME",)),  # within the grace after the window
    ]
    s = score_feed("f", [EVENT], FEED, alerts)
    assert s.false_alarm_days == 2
    days_outside = (date(2020, 5, 30) - date(2020, 1, 1)).days + 1 - 2
    assert s.alert_days_per_month == pytest.approx(2 / (days_outside / 30.44))


def test_the_shipped_event_list_is_dated_and_well_formed() -> None:
    events = load_events()
    assert len(events) >= 15 and len({e.id for e in events}) == len(events)
    assert all(e.start <= e.end and e.record for e in events)
    ids = {e.id for e in events}
    assert {"vol_shock", "facebook_ca", "dec2018_selloff", "boeing_max", "covid_crash", "negative_oil"} <= ids
    assert next(e for e in events if e.id == "negative_oil").start == date(2020, 4, 20)


def test_feed_parsing_traps(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text(
        'Time,Headlines\n18-Jul-20,"Nils Pratley on finance  \n\n\n  Centrica left it late"\nJul-18,Month only\n'
    )
    (tmp_path / "c.csv").write_text('Headlines,Time,Description\nA," 7:51  PM ET Fri, 17 July 2020",d\n,,\n')
    g = read_feed(tmp_path, FeedSpec("guardian", "g.csv", "Time", "Headlines", "%d-%b-%y"))
    assert list(g["text"]) == ["Centrica left it late"] and g.attrs["dropped"] == 1
    assert g["published_at"][0] == pd.Timestamp("2020-07-18 23:59:59", tz="UTC")  # known at the day's end
    c = read_feed(tmp_path, FeedSpec("cnbc", "c.csv", "Time", "Headlines", None))
    assert c["published_at"][0] == pd.Timestamp("2020-07-17 23:51", tz="UTC")  # 7:51 PM EDT
    assert clean_headline("  a \n b ") == "a b"


def test_tags_are_cached_per_text_and_classified_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def predict(texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return [Tags("Markets", 0.9, "negative", -0.5, 0.9, "m1") for _ in texts]

    path = tmp_path / "m1.jsonl"
    assert [t["sentiment"] for t in cached_tags(["a", "b", "a"], path, predict)] == ["negative"] * 3
    assert cached_tags(["b", "a"], path, None)[0]["topic"] == "Markets" and calls == [2]
    assert len(load_cache(path)) == 2
    with pytest.raises(LookupError):
        cached_tags(["c"], path, None)
