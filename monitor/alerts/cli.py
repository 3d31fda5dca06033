"""Subcommands: ``finpulse scheduler``, ``finpulse alerts backtest|list|run-once``, ``finpulse bench events``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.options import add_model_options, model_overrides
from monitor.settings import Settings

log = logging.getLogger(__name__)


def add_commands(sub: Any) -> None:
    p = sub.add_parser("scheduler", help="run the negative-spike detector every interval and send alerts")
    p.add_argument("--interval", type=int, help="seconds between runs (FINPULSE_ALERTS_INTERVAL_SECONDS)")
    p.set_defaults(func=_scheduler)

    alerts = sub.add_parser("alerts", help="alert tools").add_subparsers(dest="alerts_cmd", metavar="ACTION")
    b = alerts.add_parser(
        "backtest", help="replay a headline CSV in simulated time; alerts as JSONL on stdout"
    )
    b.add_argument("--input", required=True, type=Path, help="CSV of headlines with a time column")
    b.add_argument("--time-column", help="default: first of published_at, timestamp, time, date")
    b.add_argument("--text-column", help="default: first of title, headline, headlines, text")
    b.add_argument("--tags", type=Path, help="precomputed tags JSONL, one line per CSV row (skips the model)")
    add_model_options(b, ("model",))
    b.add_argument(
        "--bucket-minutes", type=int, help="FINPULSE_ALERTS_BUCKET_SECONDS / 60 (must divide a day)"
    )
    b.add_argument(
        "--windows-minutes", help="comma-separated window scales (FINPULSE_ALERTS_WINDOWS_MINUTES)"
    )
    b.add_argument("--cooldown-minutes", type=int, help="FINPULSE_ALERTS_COOLDOWN_MINUTES")
    b.add_argument("--false-alerts-per-month", type=float, help="FINPULSE_ALERTS_FALSE_ALERTS_PER_MONTH")
    b.add_argument("--min-count", type=int, help="FINPULSE_ALERTS_MIN_COUNT")
    b.add_argument("--baseline-days", type=int, help="FINPULSE_ALERTS_BASELINE_DAYS")
    b.set_defaults(func=_backtest)

    lst = alerts.add_parser("list", help="show stored alerts, newest first")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--state", choices=("pending", "sent", "failed", "rejected"))
    lst.add_argument("--json", action="store_true", help="JSONL instead of a table")
    lst.set_defaults(func=_list)

    once = alerts.add_parser("run-once", help="one detection + delivery run now (honours the scheduler lock)")
    once.set_defaults(func=_run_once)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_cmd", metavar="NAME")
    e = bench.add_parser(
        "events", help="replay the dated 2017-2020 headline feeds and score alerts against market events"
    )
    e.add_argument(
        "--data", type=Path, help="folder of the feeds (default: FINPULSE_DATA_DIR/news-headlines-2017-2020)"
    )
    e.add_argument("--feeds", default="cnbc,guardian,reuters", help="comma-separated feed names")
    e.add_argument("--tags-cache", type=Path, help="tag cache folder (default: <model cache dir>/tags)")
    add_model_options(e, ("model",))  # for texts not in the cache
    e.add_argument(
        "--cached-only", action="store_true", help="never load the model; fail if tags are missing"
    )
    e.add_argument(
        "--tags-version", help="read the cache of this tag version instead (implies --cached-only)"
    )
    e.add_argument("--png", type=Path, help="write the timeline picture here")
    e.add_argument("--alerts-out", type=Path, help="write every alert as JSONL here")
    e.add_argument("--loeo", action="store_true", help="also run leave-one-event-out tuning")
    e.set_defaults(func=_bench_events)


def _alert_overrides(args: argparse.Namespace) -> dict[str, Any]:
    bucket = getattr(args, "bucket_minutes", None)
    windows = getattr(args, "windows_minutes", None)
    return {
        "interval_seconds": getattr(args, "interval", None),
        "bucket_seconds": bucket * 60 if bucket else None,
        "windows_minutes": tuple(int(w) for w in windows.split(",")) if windows else None,
        "cooldown_minutes": getattr(args, "cooldown_minutes", None),
        "false_alerts_per_month": getattr(args, "false_alerts_per_month", None),
        "min_count": getattr(args, "min_count", None),
        "baseline_days": getattr(args, "baseline_days", None),
    }


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerts.scheduler import run_scheduler

    return run_scheduler(settings.with_overrides(alerts=_alert_overrides(args)))


def _run_once(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerts.scheduler import build_alert_runner, guarded_run
    from monitor.store import init_db, make_engine

    engine = make_engine(settings.database.url)
    init_db(engine)
    runner = build_alert_runner(settings, engine)
    try:
        report = guarded_run(runner.service, runner.lock, datetime.now(UTC))
    finally:
        runner.close()
        engine.dispose()
    print(
        json.dumps(
            {
                "keys": report.keys,
                "new_alerts": report.new_alerts,
                "sent": report.sent,
                "failed": report.failed,
                "skipped": report.skipped,
            }
        )
    )
    return 1 if report.failed else 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerts.queries import list_alerts
    from monitor.store import init_db, make_engine

    engine = make_engine(settings.database.url)
    init_db(engine)
    with engine.connect() as conn:
        rows = list_alerts(conn, args.limit, args.state)
    for a in rows:
        if args.json:
            print(json.dumps(a.as_json(), default=str))
        else:
            print(
                f"{a.fired_at:%Y-%m-%d %H:%M} {a.state:<7} {a.severity:<8} {str(a.key):<40} "
                f"{a.details.get('explanation', '')}" + (f"  [{a.last_error}]" if a.last_error else "")
            )
    return 0


def _backtest(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.alerts import backtest as bt
    from monitor.alerts.service import params_from_settings
    from monitor.emerging import emerging_from_settings
    from monitor.entities import load_linker

    alert_settings = settings.with_overrides(alerts=_alert_overrides(args)).alerts
    frame = bt.read_headlines(args.input, args.time_column, args.text_column)
    if args.tags is not None:
        tags = bt.read_tags_jsonl(args.tags, frame)
    else:
        from monitor.classify import load_classifier  # heavy (torch): only when no tags are given

        clf = load_classifier(settings.with_overrides(model=model_overrides(args)).model)
        tags = bt.tags_from_classifier(list(frame["text"]), clf.predict, settings.model.batch_size)
    tagged = bt.attach_tags(frame, tags)
    e = settings.entities
    tagged = bt.attach_entities(
        tagged,
        load_linker(e.watchlist),
        emerging_from_settings(e.provisional_min_stories, e.provisional_window_days, e.provisional),
    )
    params = params_from_settings(alert_settings)
    window = timedelta(hours=settings.worker.duplicate_window_hours)
    found = bt.run_backtest(tagged, params, repeat_window=window)
    for a in found:
        sys.stdout.write(json.dumps(a.as_json(), default=str) + "\n")
    summary = bt.summarise(found, tagged)
    sys.stderr.write("summary: " + json.dumps(summary) + "\n")
    return 0


def _bench_events(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.bench.cli import run_events

    return run_events(args, settings.with_overrides(model=model_overrides(args)))
