"""``finpulse scheduler``: APScheduler 3.11 runs the alert service every ``interval_seconds``.

Job defaults: ``coalesce`` (missed runs collapse into one), ``max_instances=1`` (a slow run is never
overlapped by the next) and a misfire grace of one interval. Before each run the process makes sure it holds
the database lock; an instance without it stays on standby and takes over when the holder goes away.

On SIGTERM the run in flight finishes (its posts are answered and recorded) before the lock is released, so
a restart neither re-sends nor loses what that run was posting. Each completed run (or standby check) marks
progress for ``finpulse healthcheck scheduler``; a run that raises marks a fault instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from monitor.alerts.locks import DatabaseLock
from monitor.alerts.notifiers import WebhookSender, parse_webhooks
from monitor.alerts.service import AlertService, RunReport
from monitor.alerts.words import lazy_explainer
from monitor.faults import describe
from monitor.health import Progress
from monitor.settings import Settings
from monitor.signals import stop_on_signals
from monitor.store import make_engine, mask_url, wait_for_database
from monitor.watchlist import read_watchlist

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertRunner:
    """The alert service with the scheduler lock it runs under and the webhook sender it posts through."""

    service: AlertService
    lock: DatabaseLock
    sender: WebhookSender

    def close(self) -> None:
        self.lock.release()
        self.sender.close()


def build_alert_runner(settings: Settings, engine: Engine) -> AlertRunner:
    """The one wiring of the alert service, for ``finpulse scheduler`` and ``finpulse alerts run-once``: the
    webhooks (a bad config or watchlist file fails here, with a clear message), the sender, the explainer and
    the database lock, whose lease outlasts three intervals so a slow run never loses it to a standby."""
    alerts = settings.alerts
    hooks = parse_webhooks(alerts, read_watchlist(settings.entities.watchlist).keys)
    sender = WebhookSender.from_settings(alerts)
    service = AlertService(
        engine, alerts, hooks, sender, explainer=lazy_explainer(settings.model, alerts.explain_words)
    )
    lease = timedelta(seconds=max(alerts.lock_lease_seconds, 3 * alerts.interval_seconds))
    return AlertRunner(service, DatabaseLock(engine, alerts.lock_name, lease), sender)


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


def tracked_run(service: AlertService, lock: DatabaseLock, progress: Progress) -> RunReport | None:
    """``guarded_run`` that records its outcome for the progress healthcheck (errors logged, not raised)."""
    try:
        report = guarded_run(service, lock, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - a failed run is retried on the next interval
        progress.fault(f"run failed: {describe(exc)}")
        log.exception("scheduler run failed; retrying on the next interval")
        return None
    progress.ok("standby" if report.skipped else "ok")
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
    runner = build_alert_runner(settings, engine)
    progress = Progress(settings.health.dir, "scheduler")
    progress.fault("starting: waiting for the database")
    stopping = stop_on_signals("stopping the scheduler after the run in flight")
    try:
        if not wait_for_database(engine, stopping):
            return 0
        if not runner.service.hooks:
            log.warning(
                "no webhooks configured (FINPULSE_ALERTS_WEBHOOKS / FINPULSE_ALERTS_SLACK_WEBHOOK_URL): "
                "alerts are stored but not posted"
            )
        scheduler = build_scheduler(
            lambda: tracked_run(runner.service, runner.lock, progress), alerts.interval_seconds
        )

        def shutdown_on_stop() -> (
            None
        ):  # shutdown(wait=True) joins the job thread: never from a signal handler
            stopping.wait()
            try:
                scheduler.shutdown(wait=True)
            except SchedulerNotRunningError:
                pass  # stopped before it started: start() below is skipped

        closer = threading.Thread(target=shutdown_on_stop, name="scheduler-stop", daemon=True)
        closer.start()
        log.info(
            "scheduler: every %d s, %d webhook(s), database %s",
            alerts.interval_seconds,
            len(runner.service.hooks),
            mask_url(engine.url.render_as_string(hide_password=False)),
        )
        if not stopping.is_set():
            scheduler.start()
        if stopping.is_set():  # the main loop can return before the job in flight has finished
            closer.join()
    finally:
        runner.close()
        engine.dispose()
    return 0
