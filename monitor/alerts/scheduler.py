"""``finpulse scheduler``: APScheduler 3.11 runs the alert service every ``interval_seconds``.

Job defaults: ``coalesce`` (missed runs collapse into one), ``max_instances=1`` (a slow run is never
overlapped by the next) and a misfire grace of one interval. Before each run the process makes sure it holds
the database lock; an instance without it stays on standby and takes over when the holder goes away.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.alerts.locks import DatabaseLock
from monitor.alerts.notifiers import WebhookSender, parse_webhooks
from monitor.alerts.service import AlertService, RunReport
from monitor.settings import Settings
from monitor.store import init_db, make_engine

log = logging.getLogger(__name__)


def guarded_run(service: AlertService, lock: DatabaseLock, now: datetime) -> RunReport:
    """One run if this process holds the lock; otherwise a skipped report (standby)."""
    if not lock.ensure(now):
        log.info("standby: another scheduler holds lock %s", lock.name)
        return RunReport(skipped=True)
    report = service.run_once(now)
    log.info(
        "run: %d keys, %d new alerts, %d sent, %d failed",
        report.keys,
        report.new_alerts,
        report.sent,
        report.failed,
    )
    return report


def build_scheduler(job: Callable[[], object], interval_seconds: int) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": interval_seconds},
    )
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id="negative-spikes",
        name="negative-spike alerts",
        next_run_time=datetime.now(UTC),
    )
    return scheduler


def run_scheduler(settings: Settings) -> int:
    alerts = settings.alerts
    engine = make_engine(settings.database.url, echo=settings.database.echo)
    init_db(engine)
    hooks = parse_webhooks(alerts)
    if not hooks:
        log.warning(
            "no webhooks configured (FINPULSE_ALERTS_WEBHOOKS / FINPULSE_ALERTS_SLACK_WEBHOOK_URL): "
            "alerts are stored but not posted"
        )
    sender = WebhookSender.from_settings(alerts)
    service = AlertService(engine, alerts, hooks, sender)
    lease = timedelta(seconds=max(alerts.lock_lease_seconds, 3 * alerts.interval_seconds))
    lock = DatabaseLock(engine, alerts.lock_name, lease)
    scheduler = build_scheduler(
        lambda: guarded_run(service, lock, datetime.now(UTC)), alerts.interval_seconds
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the scheduler", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "scheduler: every %d s, %d webhook(s), database %s",
        alerts.interval_seconds,
        len(hooks),
        engine.url.render_as_string(hide_password=True),
    )
    try:
        scheduler.start()
    finally:
        lock.release()
        sender.close()
        engine.dispose()
    return 0
