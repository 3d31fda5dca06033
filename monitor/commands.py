"""Subcommands of the streaming backbone: broker, worker, ingest, db, healthcheck, run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.request
from pathlib import Path
from typing import Any

from monitor.options import WORKER, add_model_options, model_overrides
from monitor.settings import Settings
from monitor.signals import stop_on_signals

log = logging.getLogger("finpulse")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu, memory storage)")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=_broker)

    p = sub.add_parser("worker", help="consume news, classify in micro-batches, store, publish")
    p.add_argument("--batch-size", type=int, help="micro-batch size (FINPULSE_WORKER_BATCH_SIZE)")
    p.add_argument(
        "--max-wait-ms", type=int, help="longest wait to fill a batch (FINPULSE_WORKER_MAX_WAIT_MS)"
    )
    add_model_options(p, WORKER)
    p.add_argument("--group", help="consumer group id")
    p.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
    p.set_defaults(func=_worker)

    ingest = sub.add_parser("ingest", help="publish news to Kafka").add_subparsers(
        dest="source", metavar="SOURCE"
    )
    r = ingest.add_parser("replay", help="replay a CSV/JSONL file in time order")
    r.add_argument("file", type=Path)
    r.add_argument("--speed", type=float, default=0.0, help="X times real time; 0 = as fast as possible")
    r.add_argument("--title-column", default="title")
    r.add_argument("--time-column", default="published_at")
    r.add_argument("--source-column", default="source")
    r.add_argument("--url-column", default="url")
    r.add_argument("--tickers-column", default="tickers")
    r.add_argument("--id-column", default="id")
    r.add_argument("--body-column", default="body")
    r.add_argument("--source", dest="default_source", default="replay", help="source name when no column")
    r.add_argument("--timezone", default="UTC", help="zone for timestamps without one")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_replay)

    r = ingest.add_parser("rss", help="poll RSS/Atom feeds; never re-sends an item")
    r.add_argument("urls", nargs="+")
    r.add_argument("--interval", type=float, default=300.0, help="seconds between polls")
    r.add_argument("--state", type=Path, default=Path("data/rss-state.json"))
    r.add_argument("--once", action="store_true", help="poll once and exit")
    r.set_defaults(func=_rss)

    r = ingest.add_parser("demo", help="built-in market-news simulator with a negative incident")
    r.add_argument("--rate", type=float, default=30.0, help="headlines per minute")
    r.add_argument("--negative-share", type=float, default=0.2)
    r.add_argument("--incident-ticker", default="BA")
    r.add_argument("--incident-after", type=float, default=120.0, help="seconds; negative disables")
    r.add_argument("--incident-duration", type=float, default=300.0)
    r.add_argument("--incident-rate", type=float, default=30.0, help="extra negative headlines per minute")
    r.add_argument("--backfill-hours", type=float, default=24.0)
    r.add_argument("--backfill-rate", type=float, default=2.0, help="headlines per minute of history")
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--count", type=int, default=0, help="stop after N live items (0 = run until stopped)")
    r.set_defaults(func=_demo)

    dlq = sub.add_parser("dlq", help="dead-letter topic").add_subparsers(dest="dlq_cmd", metavar="ACTION")
    d = dlq.add_parser("replay", help="re-publish dead letters to the raw topic once their cause is fixed")
    d.add_argument("--reason", help="only dead letters whose reason contains this text (case-insensitive)")
    d.add_argument(
        "--since", help="only those dead-lettered since: ISO 8601 time or a duration (90m, 2h, 1d)"
    )
    d.add_argument("--dry-run", action="store_true", help="count what would be replayed, send nothing")
    d.set_defaults(func=_dlq_replay)

    db = sub.add_parser("db", help="database utilities").add_subparsers(dest="db_cmd", metavar="ACTION")
    d = db.add_parser("init", help="create tables, indexes and the tagged_news view")
    d.set_defaults(func=_db_init)

    h = sub.add_parser("healthcheck", help="exit 0 when a component is healthy (for compose)")
    h.add_argument(
        "what",
        choices=["kafka", "db", "http", "worker", "scheduler", "ingest"],
        help="worker / scheduler / ingest: made progress within --max-age (FINPULSE_HEALTH_DIR)",
    )
    h.add_argument("--url", help="for http: the URL to GET (e.g. http://127.0.0.1:9108/metrics)")
    h.add_argument(
        "--max-age",
        type=float,
        help="seconds since the last progress (worker 120, scheduler 3 intervals + 60, ingest 900)",
    )
    h.set_defaults(func=_healthcheck)

    p = sub.add_parser("run", help="all-in-one embedded run: broker, worker, scheduler, dashboard, demo")
    p.add_argument("--port", type=int, default=None, help="broker port (default: from bootstrap, else free)")
    add_model_options(p, ("model",))
    p.add_argument("--no-demo", action="store_true")
    p.set_defaults(func=_run)


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.broker import serve_forever

    return serve_forever(args.port)


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.worker import run_worker

    s = settings.with_overrides(
        worker={
            "batch_size": args.batch_size,
            "max_wait_ms": args.max_wait_ms,
            "metrics_port": args.metrics_port,
        },
        model=model_overrides(args),
        kafka={"group": args.group},
    )
    return run_worker(s)


def _flush_publisher(settings: Settings) -> tuple[Any, Any]:
    from monitor.ingest.producer import open_producer, send_items

    producer = open_producer(settings)

    def publish(items: list[Any]) -> None:  # raises SendFailed unless every send was acknowledged
        send_items(producer, settings.kafka.topic_raw, items)

    return producer, publish


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from monitor.ingest.replay import ColumnMap, load_items, paced

    cols = ColumnMap(
        args.title_column,
        args.time_column,
        args.source_column,
        args.url_column,
        args.tickers_column,
        args.id_column,
        args.body_column,
        args.default_source,
        args.timezone,
    )
    items, errors = load_items(args.file, cols)
    for e in errors[:20]:
        log.warning("skipped %s", e)
    if len(errors) > 20:
        log.warning("… and %d more rows skipped", len(errors) - 20)
    producer, _ = _flush_publisher(settings)
    topic = settings.kafka.topic_raw
    sent = failed = 0
    try:
        bar = tqdm(
            paced(items, args.speed), total=len(items), unit="item", disable=args.no_progress, file=sys.stderr
        )
        chunk: list[Any] = []
        for item in bar:  # acknowledged in chunks, so a failed send is counted, never reported as sent
            chunk.append(item)
            if len(chunk) >= 500 or args.speed > 0:
                sent, failed = _send_counted(producer, topic, chunk, sent, failed)
                chunk = []
        sent, failed = _send_counted(producer, topic, chunk, sent, failed)
    finally:
        producer.close()
    print(json.dumps({"sent": sent, "failed": failed, "skipped": len(errors), "topic": topic}))
    return 0 if (items or not errors) and not failed else 1


def _send_counted(producer: Any, topic: str, chunk: list[Any], sent: int, failed: int) -> tuple[int, int]:
    from monitor.ingest.producer import SendFailed, send_items

    if not chunk:
        return sent, failed
    try:
        return sent + send_items(producer, topic, chunk), failed
    except SendFailed as exc:
        log.error("%s", exc)
        return sent + len(chunk) - exc.failed, failed + exc.failed


def _rss(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.health import Progress
    from monitor.ingest.fetch import FetchLimits
    from monitor.ingest.rss import SentState, poll_forever

    stop = stop_on_signals()
    progress = Progress(settings.health.dir, "ingest")
    progress.fault("starting: connecting to Kafka")
    producer, publish = _flush_publisher(settings)
    i = settings.ingest
    limits = FetchLimits(
        i.connect_timeout_seconds, i.read_timeout_seconds, i.fetch_timeout_seconds, i.max_feed_bytes
    )
    try:
        n = poll_forever(
            args.urls,
            args.interval,
            SentState(args.state),
            publish,
            stop,
            once=args.once,
            limits=limits,
            progress=progress,
        )
    finally:
        producer.close()
    log.info("rss ingest stopped after %d items", n)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from monitor.ingest.demo import DemoConfig, backfill, live

    cfg = DemoConfig(
        args.rate,
        args.negative_share,
        args.incident_ticker,
        args.incident_after,
        args.incident_duration,
        args.incident_rate,
        args.backfill_hours,
        args.backfill_rate,
        args.seed,
    )
    stop = stop_on_signals()
    producer, publish = _flush_publisher(settings)
    try:
        history = backfill(cfg, datetime.now(UTC))
        if history:
            publish(history)
            log.info(
                "demo: published %d backfill items (%.0f h of history)", len(history), cfg.backfill_hours
            )
        n = 0
        for item in live(cfg, lambda: datetime.now(UTC), stop):
            try:
                publish([item])
            except Exception as exc:  # noqa: BLE001 - a failed send is logged and counted, the simulator goes on
                log.error("demo: item not sent: %s", exc)
                continue
            n += 1
            if args.count and n >= args.count:
                break
    finally:
        producer.close()
    return 0


def _dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from monitor.dlq import parse_since, read_dead_letters, replay, select

    since = parse_since(args.since, datetime.now(UTC))
    chosen = select(read_dead_letters(settings.kafka, since), args.reason, since)
    sent = 0 if args.dry_run else replay(settings.kafka, chosen.replay)
    print(
        json.dumps(
            {
                "replayed": sent,
                "selected": len(chosen.replay),
                "other_reason": chosen.other_reason,
                "truncated": chosen.truncated,
                "repeated": chosen.repeated,
                "dry_run": args.dry_run,
                "topic": settings.kafka.topic_raw,
            }
        )
    )
    return 0


def _db_init(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.store import init_db, make_engine

    init_db(make_engine(settings.database.url))
    print("database ready")
    return 0


def _progress_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from monitor.health import judge

    default = {"worker": 120.0, "scheduler": 3.0 * settings.alerts.interval_seconds + 60, "ingest": 900.0}
    verdict = judge(
        Path(settings.health.dir) / f"{args.what}.json", args.max_age or default[args.what], time.time()
    )
    print(
        ("ok: " if verdict.healthy else "unhealthy: ") + f"{args.what} {verdict.message}",
        file=sys.stdout if verdict.healthy else sys.stderr,
    )
    return 0 if verdict.healthy else 1


def _healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    if args.what in ("worker", "scheduler", "ingest"):
        return _progress_healthcheck(args, settings)
    try:
        if args.what == "kafka":
            from kafka import KafkaAdminClient

            admin = KafkaAdminClient(**settings.kafka.client_kwargs(), request_timeout_ms=5000)
            admin.list_topics()
            admin.close()
        elif args.what == "db":
            import sqlalchemy as sa

            from monitor.store import make_engine

            with make_engine(settings.database.url).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        else:
            url = args.url or f"http://127.0.0.1:{settings.worker.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - operator-given URL
                if resp.status >= 400:
                    raise RuntimeError(f"HTTP {resp.status}")
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print(f"unhealthy: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print("ok")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from monitor.allinone import run_all

    return run_all(settings, port=args.port, model=args.model, demo=not args.no_demo)
