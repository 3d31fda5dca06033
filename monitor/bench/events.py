"""Scoring alerts against dated market events (pure): recall, time to alert, false-alarm days.

An event (``market_events.csv``: id, name, start, end, pattern, record) is a window of UTC days and a pattern
for the headlines that are about it. On one feed:

* the feed **covers** the event when the window lies inside the feed's span and at least ``MIN_STORIES``
  distinct headlines in it match the pattern; the **first story** is the earliest of them;
* the event is **caught** by the first alert fired inside the window (up to the end of its last day plus one
  hour: date-only feeds are counted at the day's end) whose top headlines include a matching one;
  ``hours`` = fired_at - first story;
* every alert fired outside all windows is a false alarm; **alert-days per month** = distinct UTC days with
  one, per 30.44 days of the feed's span outside the windows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

EVENTS_FILE = Path(__file__).with_name("market_events.csv")
MIN_STORIES = 3
GRACE = timedelta(hours=1)
ON_TIME_HOURS = 24.0
# A detector decides at the end of the bucket holding a story, and date-only feeds stamp a day's stories at its
# last second, so "within 24 h" allows one default bucket (5 min) past the day: 24 h + 1 s is on time.
ON_TIME_SLACK_HOURS = 5 / 60
DAYS_PER_MONTH = 30.44


@dataclass(frozen=True, slots=True)
class MarketEvent:
    id: str
    name: str
    start: date
    end: date  # last day, inclusive
    pattern: re.Pattern[str]
    record: str

    @property
    def opens(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def closes(self) -> datetime:
        return datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(days=1) + GRACE

    def contains(self, t: datetime) -> bool:
        return self.opens <= t < self.closes


@dataclass(frozen=True, slots=True)
class AlertRecord:
    fired_at: datetime
    key: str
    headlines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventResult:
    event: str
    covered: bool
    stories: int
    first_story: datetime | None
    caught: bool
    fired_at: datetime | None
    hours: float | None
    key: str | None


@dataclass(frozen=True, slots=True)
class FeedScore:
    feed: str
    events: tuple[EventResult, ...]
    false_alarm_days: int
    months_outside: float
    alerts: int

    @property
    def covered(self) -> int:
        return sum(e.covered for e in self.events)

    @property
    def caught(self) -> int:
        return sum(e.covered and e.caught for e in self.events)

    @property
    def within_24h(self) -> int:
        return sum(e.covered and on_time(e) for e in self.events)

    @property
    def alert_days_per_month(self) -> float:
        return self.false_alarm_days / self.months_outside if self.months_outside else 0.0


def on_time(e: EventResult) -> bool:
    """Caught within 24 h of the event's first story (see ``ON_TIME_SLACK_HOURS``)."""
    return e.caught and (e.hours or 0.0) <= ON_TIME_HOURS + ON_TIME_SLACK_HOURS


def load_events(path: Path = EVENTS_FILE) -> list[MarketEvent]:
    with Path(path).open(newline="") as fh:
        return [
            MarketEvent(
                row["id"],
                row["name"],
                date.fromisoformat(row["start"]),
                date.fromisoformat(row["end"]),
                re.compile(row["pattern"], re.IGNORECASE),
                row["record"],
            )
            for row in csv.DictReader(fh)
        ]


def score_event(event: MarketEvent, stories: pd.DataFrame, alerts: Sequence[AlertRecord]) -> EventResult:
    """``stories``: the feed's distinct headlines (``published_at``, ``text``)."""
    inside = stories[(stories["published_at"] >= event.opens) & (stories["published_at"] < event.closes)]
    matching = inside[inside["text"].str.contains(event.pattern, regex=True)]
    first = matching["published_at"].min() if len(matching) else None
    first_dt = first.to_pydatetime() if first is not None else None
    for a in sorted(alerts, key=lambda a: a.fired_at):
        if event.contains(a.fired_at) and any(event.pattern.search(h) for h in a.headlines):
            hours = (a.fired_at - first_dt).total_seconds() / 3600 if first_dt is not None else None
            return EventResult(event.id, False, len(matching), first_dt, True, a.fired_at, hours, a.key)
    return EventResult(event.id, False, len(matching), first_dt, False, None, None, None)


def score_feed(
    feed: str, events: Sequence[MarketEvent], stories: pd.DataFrame, alerts: Sequence[AlertRecord]
) -> FeedScore:
    span_start = stories["published_at"].min().to_pydatetime()
    span_end = stories["published_at"].max().to_pydatetime()
    results = []
    for ev in events:
        r = score_event(ev, stories, alerts)
        covered = ev.opens >= span_start - timedelta(days=1) and ev.closes <= span_end + timedelta(days=2)
        results.append(_with_coverage(r, covered and r.stories >= MIN_STORIES))
    outside = [a for a in alerts if not any(ev.contains(a.fired_at) for ev in events)]
    fa_days = len({a.fired_at.date() for a in outside})
    return FeedScore(
        feed,
        tuple(results),
        fa_days,
        outside_days(events, span_start, span_end) / DAYS_PER_MONTH,
        len(alerts),
    )


def _with_coverage(r: EventResult, covered: bool) -> EventResult:
    return EventResult(r.event, covered, r.stories, r.first_story, r.caught, r.fired_at, r.hours, r.key)


def outside_days(events: Sequence[MarketEvent], start: datetime, end: datetime) -> float:
    """Days of ``[start, end]`` outside every event window."""
    days = pd.date_range(start.date(), end.date(), freq="D")
    inside = {d.date() for ev in events for d in pd.date_range(ev.start, ev.end, freq="D")}
    return float(sum(d.date() not in inside for d in days))
