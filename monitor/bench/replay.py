"""``finpulse bench events``: replay the dated headline feeds through the tags and the detector, per feed.

Thin shell over pure parts: ``feeds`` (parsing), ``tagcache`` (classifier tags cached per model version),
``alerts.backtest.run_backtest`` (the scheduler's detector code), ``events`` (scoring). Also draws the
timeline (daily negative stories, alerts, event windows) and runs leave-one-event-out tuning of the one
threshold parameter, ``false_alerts_per_month``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.alerts.backtest import BacktestAlert, attach_tags, drop_repeats, run_backtest
from monitor.alerts.params import DetectorParams
from monitor.bench.events import AlertRecord, FeedScore, MarketEvent, on_time, score_feed
from monitor.bench.tagcache import cached_tags
from monitor.schema import Tags

LOEO_GRID = (0.5, 1.0, 2.0, 4.0, 8.0)
FA_BUDGET = 2.0  # alert-days per month outside event windows, per feed (the target)


@dataclass(frozen=True, slots=True)
class FeedRun:
    feed: str
    stories: pd.DataFrame  # distinct tagged stories: published_at, text, sentiment, topic, ...
    alerts: tuple[BacktestAlert, ...]
    score: FeedScore


def tagged_feed(
    frame: pd.DataFrame,
    cache: Path,
    predict: Callable[[Sequence[str]], list[Tags]] | None,
    link: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Tags from the cache (classifying what is missing) and, with ``link``, the entities of each row."""
    tagged = attach_tags(frame, cached_tags(list(frame["text"]), cache, predict))
    return link(tagged) if link is not None else tagged


def records(alerts: Sequence[BacktestAlert]) -> list[AlertRecord]:
    return [
        AlertRecord(a.spike.window_end, str(a.key), tuple(str(h["title"]) for h in a.headlines))
        for a in alerts
    ]


def run_feed(
    name: str, tagged: pd.DataFrame, params: DetectorParams, events: Sequence[MarketEvent]
) -> FeedRun:
    alerts = tuple(run_backtest(tagged, params))
    stories = drop_repeats(tagged).reset_index(drop=True)
    return FeedRun(name, stories, alerts, score_feed(name, events, stories, records(alerts)))


def event_table(runs: Sequence[FeedRun], events: Sequence[MarketEvent]) -> str:
    """Markdown: one row per event, one column group per feed (caught / hours / key)."""
    head = "| event | window | " + " | ".join(r.feed for r in runs) + " |"
    lines = [head, "|---|---|" + "---|" * len(runs)]
    for ev in events:
        cells = []
        for r in runs:
            res = next(e for e in r.score.events if e.event == ev.id)
            if not res.covered:
                cells.append(f"not covered ({res.stories})")
            elif res.caught:
                cells.append(f"**{res.hours:+.0f} h** `{res.key}`")
            else:
                cells.append(f"missed ({res.stories} stories)")
        lines.append(f"| {ev.name} | {ev.start:%Y-%m-%d} – {ev.end:%m-%d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(runs: Sequence[FeedRun]) -> str:
    lines = [
        "| feed | stories | alerts | events covered | caught | within 24 h | alert-days/month outside events |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s = r.score
        lines.append(
            f"| {r.feed} | {len(r.stories)} | {s.alerts} | {s.covered} | {s.caught} | {s.within_24h} | "
            f"{s.alert_days_per_month:.2f} |"
        )
    return "\n".join(lines)


def leave_one_event_out(
    tagged: dict[str, pd.DataFrame], params: DetectorParams, events: Sequence[MarketEvent]
) -> list[dict[str, Any]]:
    """For each event: pick ``false_alerts_per_month`` from ``LOEO_GRID`` on the other events (most caught
    within 24 h on covering feeds, every feed within the false-alarm budget, then the largest value), and
    report whether the held-out event is caught with it."""
    grid: dict[float, list[FeedRun]] = {}
    for fa in LOEO_GRID:
        p = dataclasses.replace(params, false_alerts_per_month=fa)
        grid[fa] = [run_feed(name, frame, p, events) for name, frame in tagged.items()]
    out = []
    for ev in events:

        def objective(fa: float, held: str = ev.id) -> tuple[int, float]:
            runs = grid[fa]
            hits = sum(e.covered and on_time(e) for r in runs for e in r.score.events if e.event != held)
            ok = all(r.score.alert_days_per_month <= FA_BUDGET for r in runs)
            return (hits if ok else -1, fa)

        best = max(LOEO_GRID, key=objective)
        held = [e for r in grid[best] for e in r.score.events if e.event == ev.id and e.covered]
        out.append(
            {
                "event": ev.id,
                "chosen": best,
                "covered_on": len(held),
                "caught_on": sum(on_time(e) for e in held),
            }
        )
    return out


def timeline_png(runs: Sequence[FeedRun], events: Sequence[MarketEvent], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(14, 2.6 * len(runs)), sharex=True, squeeze=False)
    colours = {"warning": "#e6a700", "high": "#e35d00", "critical": "#b00020"}
    for ax, r in zip(axes[:, 0], runs, strict=True):
        neg = r.stories[r.stories["sentiment"] == "negative"]
        daily = neg.set_index("published_at").resample("D").size()
        ax.plot(daily.index, daily.to_numpy(), lw=0.7, color="#34495e", label="negative stories / day")
        for ev in events:
            ax.axvspan(pd.Timestamp(ev.opens), pd.Timestamp(ev.closes), color="#3498db", alpha=0.18, lw=0)
        top = float(daily.max()) if len(daily) else 1.0
        for a in r.alerts:
            ax.vlines(a.spike.window_end, top * 0.85, top * 1.05, color=colours[a.spike.severity], lw=1.2)
        s = r.score
        ax.set_title(
            f"{r.feed}: {s.caught}/{s.covered} covered events caught, {s.within_24h} within 24 h; "
            f"{s.alert_days_per_month:.2f} alert-days/month outside events",
            fontsize=9,
            loc="left",
        )
        ax.set_ylabel("negative / day", fontsize=8)
    axes[0, 0].legend(loc="upper left", fontsize=7)
    fig.text(0.01, 0.005, "blue bands: event windows; ticks: alerts (amber warning, orange high, red critical)",
             fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
