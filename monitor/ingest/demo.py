"""``finpulse ingest demo``: a built-in market-news simulator so the embedded run has a live stream.

Headlines are written here (templates × companies), with tickers and a mix of topics and tones. A configurable
*incident* raises the volume of negative headlines for one company/topic for a while, so the alert path has
something real to detect. ``--backfill-hours`` first emits history (timestamps in the past) so baselines exist.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.schema import NewsItem

COMPANIES: tuple[tuple[str, str], ...] = (
    ("AAPL", "Apple"),
    ("MSFT", "Microsoft"),
    ("AMZN", "Amazon"),
    ("NVDA", "Nvidia"),
    ("TSLA", "Tesla"),
    ("JPM", "JPMorgan"),
    ("XOM", "Exxon Mobil"),
    ("PFE", "Pfizer"),
    ("BA", "Boeing"),
    ("WMT", "Walmart"),
    ("NFLX", "Netflix"),
    ("META", "Meta Platforms"),
    ("GS", "Goldman Sachs"),
    ("KO", "Coca-Cola"),
    ("DIS", "Disney"),
    ("INTC", "Intel"),
    ("CVX", "Chevron"),
    ("BAC", "Bank of America"),
)
SOURCES = ("Demo Wire", "Market Desk", "FinPulse Sim", "Street Brief")
# Context clauses keep template headlines from repeating word for word (the worker flags exact repeats).
WHEN = (
    "",
    " in early trading",
    " in premarket trading",
    " after the bell",
    " at midday",
    " in Europe",
    " ahead of the open",
    " in late trading",
    " on heavy volume",
    " as sector peers slip",
)


def _fill(rng: random.Random, template: str, name: str) -> str:
    day = rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")) + f" {rng.randint(1, 28)}"
    text = template.format(
        n=name, p=rng.randint(2, 25), b=rng.randint(1, 40), k=f"{rng.randint(2, 90) * 100:,}", d=day
    )
    return text + rng.choice(WHEN)


POSITIVE = (
    "{n} beats quarterly estimates and raises full-year guidance",
    "{n} shares jump {p}% after record revenue",
    "{n} announces ${b} billion share buyback",
    "Analysts upgrade {n} to buy, citing strong demand",
    "{n} raises dividend by {p}%",
    "{n} wins ${b} billion government contract",
    "{n} stock hits all-time high on upbeat outlook",
)
NEUTRAL = (
    "{n} to report earnings on {d}",
    "{n} appoints new chief financial officer",
    "{n} schedules investor day for {d}",
    "{n} completes ${b} billion bond offering",
    "{n} shares little changed ahead of Fed decision",
    "{n} files annual report with the SEC",
    "{n} shareholders meet on {d}",
)
NEGATIVE = (
    "{n} shares plunge {p}% after profit warning",
    "{n} misses estimates and cuts guidance",
    "{n} faces regulatory probe over accounting",
    "{n} recalls products after safety complaints",
    "Analysts downgrade {n} to sell on weak demand",
    "{n} to cut {k} jobs as sales slump",
    "{n} sued by investors over misleading statements",
)
MACRO = (
    ("Fed holds rates steady, signals patience", "neutral"),
    ("Treasury yields climb as inflation data runs hot", "negative"),
    ("Oil prices slide on demand worries", "negative"),
    ("Stocks rally as jobs report beats expectations", "positive"),
    ("Dollar steadies ahead of central bank meetings", "neutral"),
    ("Gold rises to two-month high as investors seek safety", "neutral"),
)
INCIDENT = (
    "{n} shares crash {p}% as auditor resigns",
    "{n} halts trading after fraud allegations",
    "{n} plunges on surprise loss and CEO exit",
    "{n} downgraded to junk as debt concerns mount",
    "{n} hit by data breach affecting {k} customers, shares tumble",
    "Regulators raid {n} offices in bribery probe",
    "{n} warns of liquidity shortfall, stock sinks",
)


@dataclass(frozen=True, slots=True)
class DemoConfig:
    rate_per_minute: float = 30.0
    negative_share: float = 0.2
    incident_ticker: str = "BA"
    incident_after_s: float = 120.0  # after the live stream starts; < 0 disables the incident
    incident_duration_s: float = 300.0
    incident_rate_per_minute: float = 30.0
    backfill_hours: float = 24.0
    backfill_rate_per_minute: float = 2.0
    seed: int = 7


def make_headline(rng: random.Random, when: datetime, negative_share: float, n: int) -> NewsItem:
    """Pure given the RNG: one ordinary headline."""
    if rng.random() < 0.08:
        title = rng.choice(MACRO)[0] + rng.choice(WHEN)
        tickers: list[str] = []
    else:
        ticker, name = rng.choice(COMPANIES)
        r = rng.random()
        pool = NEGATIVE if r < negative_share else POSITIVE if r < negative_share + 0.35 else NEUTRAL
        title = _fill(rng, rng.choice(pool), name)
        tickers = [ticker]
    return _item(rng, when, title, tickers, n)


def make_incident(rng: random.Random, when: datetime, ticker: str, n: int) -> NewsItem:
    name = dict(COMPANIES).get(ticker, ticker)
    return _item(rng, when, _fill(rng, rng.choice(INCIDENT), name), [ticker], n)


def _item(rng: random.Random, when: datetime, title: str, tickers: list[str], n: int) -> NewsItem:
    source = rng.choice(SOURCES)
    return NewsItem(
        id=f"demo-{int(when.timestamp() * 1000)}-{n}",
        title=title,
        published_at=when,
        source=source,
        url=f"https://example.com/demo/{int(when.timestamp())}/{n}",
        tickers=tuple(tickers),
    )


def backfill(cfg: DemoConfig, now: datetime) -> list[NewsItem]:
    """History before ``now`` at the backfill rate (Poisson arrivals)."""
    rng = random.Random(cfg.seed)
    out: list[NewsItem] = []
    if cfg.backfill_hours <= 0 or cfg.backfill_rate_per_minute <= 0:
        return out
    t = now - timedelta(hours=cfg.backfill_hours)
    n = 0
    while True:
        t += timedelta(seconds=rng.expovariate(cfg.backfill_rate_per_minute / 60.0))
        if t >= now:
            return out
        out.append(make_headline(rng, t, cfg.negative_share, n))
        n += 1


def live(cfg: DemoConfig, clock: Callable[[], datetime], stop: threading.Event) -> Iterator[NewsItem]:
    """Endless stream in real time; waits between items on ``stop``."""
    rng = random.Random(cfg.seed + 1)
    start = clock()
    n = 0
    while not stop.is_set():
        elapsed = (clock() - start).total_seconds()
        incident = cfg.incident_after_s >= 0 and cfg.incident_after_s <= elapsed < (
            cfg.incident_after_s + cfg.incident_duration_s
        )
        rate = cfg.rate_per_minute + (cfg.incident_rate_per_minute if incident else 0.0)
        if stop.wait(rng.expovariate(rate / 60.0)):
            return
        now = clock()
        n += 1
        if incident and rng.random() < cfg.incident_rate_per_minute / rate:
            yield make_incident(rng, now, cfg.incident_ticker, n)
        else:
            yield make_headline(rng, now, cfg.negative_share, n)
