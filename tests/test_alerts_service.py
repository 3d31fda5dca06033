"""Detection + delivery against real databases (SQLite file, local PostgreSQL) and a real HTTP receiver:
alert states pending -> sent / failed, retries on later runs, restarts, and two schedulers racing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import test_alerts_support as support
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from test_alerts_support import NOW, WebhookReceiver, seed_history, seed_surge

from monitor.alerts.locks import DatabaseLock
from monitor.alerts.notifiers import WebhookSender, parse_webhooks
from monitor.alerts.queries import list_alerts
from monitor.alerts.scheduler import build_scheduler, guarded_run
from monitor.alerts.service import AlertService, RunReport
from monitor.settings import AlertSettings
from monitor.store import init_db, make_engine

receiver = support.receiver  # the real local webhook receiver fixture


def alert_settings(*paths: str, receiver: WebhookReceiver, **kw: object) -> AlertSettings:
    hooks = ",".join(f'{{"url": "{receiver.url(p)}", "kind": "json"}}' for p in paths)
    base: dict[str, object] = dict(
        interval_seconds=60,
        bucket_seconds=300,
        baseline_days=7,
        min_count=5,
        min_history_days=2,
        cooldown_minutes=120,
        term_keys=False,  # these tests count the overall, topic and entity alerts of a seeded surge
        webhooks=SecretStr(f"[{hooks}]"),
        max_per_second=100.0,
        timeout_seconds=2.0,
        retries_per_run=1,
        backoff_seconds=0.0,
        max_retry_after_seconds=2.0,
        lock_name=f"test-{uuid.uuid4().hex}",
        digest_min_alerts=0,
    )
    base.update(kw)
    return AlertSettings(**base)  # type: ignore[arg-type]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    init_db(e)
    yield e
    e.dispose()


def service(engine: Engine, settings: AlertSettings) -> AlertService:
    return AlertService(engine, settings, parse_webhooks(settings), WebhookSender.from_settings(settings))


@pytest.fixture
def surge_db(engine: Engine) -> Engine:
    seed_history(engine, NOW)
    seed_surge(engine, NOW, n=30, ticker="ACME")
    return engine


def test_quiet_history_raises_nothing(engine: Engine, receiver: WebhookReceiver) -> None:
    seed_history(engine, NOW)
    report = service(engine, alert_settings("/h", receiver=receiver)).run_once(NOW)
    assert report.new_alerts == 0 and report.keys >= 2
    assert receiver.received() == []


def test_surge_alert_is_stored_explained_and_sent_once(surge_db: Engine, receiver: WebhookReceiver) -> None:
    s = alert_settings("/h", receiver=receiver)
    report = service(surge_db, s).run_once(NOW)
    assert report.new_alerts == 3 and report.sent == 3  # overall, topic Markets, ticker ACME
    with surge_db.connect() as conn:
        stored = list_alerts(conn)
    assert {str(a.key) for a in stored} == {"all", "topic:Markets", "ticker:ACME"}
    a = next(a for a in stored if a.key.kind == "ticker")
    assert a.state == "sent" and a.attempts == 1 and a.sent_at == NOW and a.last_error is None
    assert a.details["count"] >= 6 and a.details["evidence"] >= 0 and a.details["share"] == 1.0
    assert a.details["count"] > 5 * a.details["expected"]  # fired early in the surge, on the 1 h scale
    assert "negative stories in 1 h" in a.details["explanation"]
    assert a.details["headlines"][0]["title"].startswith("Lender s") and a.details["headlines"][0]["url"]
    assert a.window_end <= NOW and a.window_end - a.window_start == timedelta(hours=1)
    bodies = [r.body for r in receiver.received("/h")]
    assert sorted(b["key"] for b in bodies) == ["all", "ticker:ACME", "topic:Markets"]
    # Later runs (same process, then a restarted one) neither repeat nor re-send.
    again = service(surge_db, s).run_once(NOW + timedelta(minutes=5))
    restarted = service(surge_db, s).run_once(NOW + timedelta(minutes=30))
    assert again.new_alerts == restarted.new_alerts == 0 and again.sent == restarted.sent == 0
    assert len(receiver.received("/h")) == 3


def test_failed_delivery_is_kept_and_retried_on_a_later_run(
    surge_db: Engine, receiver: WebhookReceiver
) -> None:
    receiver.answer("/down", 500)
    s = alert_settings("/down", receiver=receiver)
    first = service(surge_db, s).run_once(NOW)
    assert first.new_alerts == 3 and first.failed == 3 and first.sent == 0
    with surge_db.connect() as conn:
        stored = list_alerts(conn)
    assert all(a.state == "failed" and a.attempts == 1 for a in stored)
    assert all("HTTP 500" in (a.last_error or "") and "127.0.0.1" not in (a.last_error or "") for a in stored)
    assert all(a.next_attempt_at == NOW + timedelta(seconds=60) for a in stored)
    # Not due yet: nothing is posted.
    assert service(surge_db, s).run_once(NOW + timedelta(seconds=30)).failed == 0
    assert len(receiver.received("/down")) == 3
    # Still failing: attempts grow, backoff doubles.
    service(surge_db, s).run_once(NOW + timedelta(seconds=60))
    with surge_db.connect() as conn:
        assert {(a.attempts, a.next_attempt_at) for a in list_alerts(conn)} == {
            (2, NOW + timedelta(seconds=180))
        }
    # The receiver recovers: every alert goes out exactly once, state sent.
    receiver.answer("/down", 200)
    done = service(surge_db, s).run_once(NOW + timedelta(seconds=180))
    assert done.sent == 3 and done.new_alerts == 0
    with surge_db.connect() as conn:
        assert {(a.state, a.attempts) for a in list_alerts(conn)} == {("sent", 3)}
    assert service(surge_db, s).run_once(NOW + timedelta(hours=1)).sent == 0
    ok = [r for r in receiver.received("/down")]
    assert len(ok) == 3 + 3 + 3


def test_partial_failure_resends_only_to_the_receiver_that_missed_it(
    surge_db: Engine, receiver: WebhookReceiver
) -> None:
    receiver.answer("/bad", 500, 200)  # the first post to /bad fails, later ones succeed
    s = alert_settings("/good", "/bad", receiver=receiver)
    service(surge_db, s).run_once(NOW)
    with surge_db.connect() as conn:
        failed = [a for a in list_alerts(conn) if a.state == "failed"]
    assert len(failed) == 1 and len(failed[0].deliveries) == 1  # /good already has it
    service(surge_db, s).run_once(NOW + timedelta(minutes=2))
    good = [r.body["alert_key"] for r in receiver.received("/good")]
    bad = [r.body["alert_key"] for r in receiver.received("/bad")]
    assert len(good) == 3 and len(set(good)) == 3  # never re-posted to the receiver that accepted it
    assert len(bad) == 4 and bad.count(failed[0].alert_key) == 2
    with surge_db.connect() as conn:
        assert {a.state for a in list_alerts(conn)} == {"sent"}


def test_an_alert_no_webhook_routes_is_recorded_as_not_posted(
    surge_db: Engine, receiver: WebhookReceiver
) -> None:
    only_zzz = SecretStr(f'[{{"url": "{receiver.url("/zzz")}", "tickers": ["ZZZ"]}}]')
    s = alert_settings(receiver=receiver, webhooks=only_zzz)
    report = service(surge_db, s).run_once(NOW)
    assert report.new_alerts == 3 and report.sent == 3 and receiver.received() == []
    with surge_db.connect() as conn:
        assert {(a.state, a.last_error) for a in list_alerts(conn)} == {
            ("sent", "not posted: no configured webhook routes this alert")
        }


def test_many_simultaneous_alerts_go_out_as_one_digest_per_webhook(
    surge_db: Engine, receiver: WebhookReceiver
) -> None:
    receiver.answer("/digest", 500, 200)
    hooks = (
        f'[{{"url": "{receiver.url("/digest")}", "kind": "json"}},'
        f' {{"url": "{receiver.url("/single")}", "kind": "json", "tickers": ["ACME"]}}]'
    )
    s = alert_settings(receiver=receiver, digest_min_alerts=3, webhooks=SecretStr(hooks))
    first = service(surge_db, s).run_once(NOW)
    assert first.new_alerts == 3 and first.failed == 3  # the digest failed: every alert in it is retried
    [digest] = receiver.received("/digest")
    assert digest.body["type"] == "finpulse.negative_spike_digest"
    assert sorted(a["key"] for a in digest.body["alerts"]) == ["all", "ticker:ACME", "topic:Markets"]
    [single] = receiver.received("/single")  # only one alert routes here: a plain message, delivered once
    assert single.body["key"] == "ticker:ACME"
    done = service(surge_db, s).run_once(NOW + timedelta(minutes=2))
    assert done.sent == 3
    assert len(receiver.received("/digest")) == 2 and len(receiver.received("/single")) == 1
    with surge_db.connect() as conn:
        assert {a.state for a in list_alerts(conn)} == {"sent"}


def test_rate_limited_receiver_is_retried_after_retry_after(
    surge_db: Engine, receiver: WebhookReceiver
) -> None:
    receiver.answer("/slack", ("429", 600))
    s = alert_settings("/slack", receiver=receiver)
    service(surge_db, s).run_once(NOW)
    with surge_db.connect() as conn:
        stored = list_alerts(conn)
    assert {a.state for a in stored} == {"failed"}
    assert min(a.next_attempt_at for a in stored) >= NOW + timedelta(seconds=600)  # type: ignore[type-var]


def race(
    services: list[AlertService], locks: list[DatabaseLock], nows: list[datetime]
) -> list[list[RunReport]]:
    """Each service runs its guarded job at each ``now``, all services started together per tick."""
    reports: list[list[RunReport]] = [[] for _ in services]
    for now in nows:
        barrier = threading.Barrier(len(services))

        def go(i: int, barrier: threading.Barrier = barrier, now: datetime = now) -> None:
            barrier.wait()
            reports[i].append(guarded_run(services[i], locks[i], now))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(services))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    return reports


def test_two_schedulers_racing_send_exactly_once(db_url: str, receiver: WebhookReceiver) -> None:
    setup = make_engine(db_url)
    init_db(setup)
    seed_history(setup, NOW)
    seed_surge(setup, NOW, n=30, ticker="ACME")
    s = alert_settings("/race", receiver=receiver)
    engines = [make_engine(db_url) for _ in range(2)]
    services = [service(e, s) for e in engines]
    locks = [DatabaseLock(e, s.lock_name, timedelta(minutes=5)) for e in engines]
    try:
        reports = race(services, locks, [NOW + timedelta(seconds=60 * k) for k in range(4)])
        ran = [sum(not r.skipped for r in rs) for rs in reports]
        assert sorted(ran) == [0, 4]  # one instance did every run, the other waited on standby
        bodies = receiver.received("/race")
        assert sorted(b.body["key"] for b in bodies) == ["all", "ticker:ACME", "topic:Markets"]
        # The holder goes away: the standby takes over (PostgreSQL: session closed; SQLite: lease expired).
        holder = ran.index(4)
        locks[holder].release()
        standby = 1 - holder
        assert guarded_run(services[standby], locks[standby], NOW + timedelta(minutes=10)).skipped is False
        assert guarded_run(services[holder], locks[holder], NOW + timedelta(minutes=11)).skipped is True
    finally:
        for lock in locks:
            lock.release()
        for e in [*engines, setup]:
            e.dispose()


def test_sqlite_lease_of_a_crashed_holder_expires(tmp_path, receiver: WebhookReceiver) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'lease.db'}"
    e = make_engine(url)
    init_db(e)
    a = DatabaseLock(e, "lease-test", timedelta(minutes=5), holder="a")
    b = DatabaseLock(e, "lease-test", timedelta(minutes=5), holder="b")
    assert a.ensure(NOW) and not b.ensure(NOW + timedelta(minutes=1))
    assert a.ensure(NOW + timedelta(minutes=4))  # renewal extends the lease
    assert not b.ensure(NOW + timedelta(minutes=8))
    assert b.ensure(NOW + timedelta(minutes=10))  # "a" stopped renewing (crashed): lease expired
    assert not a.ensure(NOW + timedelta(minutes=10, seconds=1))
    e.dispose()


def test_apscheduler_job_defaults(engine: Engine, receiver: WebhookReceiver) -> None:
    scheduler = build_scheduler(lambda: None, 60)
    job = scheduler.get_jobs()[0] if scheduler.get_jobs() else None
    defaults = scheduler._job_defaults  # noqa: SLF001 (no public accessor in APScheduler 3)
    assert (
        defaults["coalesce"] is True
        and defaults["max_instances"] == 1
        and defaults["misfire_grace_time"] == 60
    )
    assert job is not None and job.trigger.interval == timedelta(seconds=60)


def test_two_scheduler_processes_on_one_database_post_each_alert_once(
    tmp_path, receiver: WebhookReceiver
) -> None:  # noqa: ANN001
    """`finpulse scheduler` twice, for real (APScheduler, SQLite lock row, HTTP): exactly one post per alert."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import UTC

    url = f"sqlite:///{tmp_path / 'live.db'}"
    e = make_engine(url)
    init_db(e)
    now = datetime.now(UTC)
    seed_history(e, now)
    seed_surge(e, now, n=30, ticker="ACME")
    e.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update(
        {
            "FINPULSE_DATABASE_URL": url,
            "FINPULSE_ALERTS_INTERVAL_SECONDS": "1",
            "FINPULSE_ALERTS_BASELINE_DAYS": "7",
            "FINPULSE_ALERTS_MIN_HISTORY_DAYS": "2",
            "FINPULSE_ALERTS_MIN_COUNT": "5",
            "FINPULSE_ALERTS_TERM_KEYS": "false",  # as alert_settings: the overall, topic and entity alerts
            "FINPULSE_ALERTS_MAX_PER_SECOND": "100",
            "FINPULSE_ALERTS_WEBHOOKS": f'[{{"url": "{receiver.url("/live")}", "kind": "json"}}]',
            "FINPULSE_ALERTS_LOCK_NAME": f"live-{uuid.uuid4().hex}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "scheduler"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(receiver.received("/live")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # several more runs of both instances
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        logs = [p.communicate(timeout=30)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    keys = sorted(r.body["key"] for r in receiver.received("/live"))
    assert keys == ["all", "ticker:ACME", "topic:Markets"], logs
    assert sum("standby" in log for log in logs) == 1  # the second instance waited
    assert all(receiver.url("/live") not in log for log in logs)  # the webhook URL is a secret


def test_a_long_spike_alerts_once_across_many_runs(engine: Engine, receiver: WebhookReceiver) -> None:
    """Five hours of sustained negative news, a run every 10 minutes: one alert per key, although the spike
    outlasts both the cooldown (2 h) and the catch-up span (1 h)."""
    from test_alerts_support import tags

    from monitor.schema import NewsItem
    from monitor.store import write_batch

    seed_history(engine, NOW)
    s = alert_settings("/long", receiver=receiver, catch_up_minutes=60)
    svc = service(engine, s)
    start = NOW - timedelta(minutes=30)
    created = 0
    for step in range(33):  # 5.5 h
        now = start + timedelta(minutes=10 * step)
        items = [
            (
                NewsItem(
                    id=f"long{step}-{k}",
                    published_at=now - timedelta(minutes=k),
                    source="wire",
                    title=f"Contagion fears deepen {step} {k}",
                ),
                tags("negative"),
            )
            for k in range(5)
        ]
        with engine.begin() as conn:
            write_batch(conn, items, timedelta(hours=24), now=now)
        created += svc.run_once(now).new_alerts
    assert created == 2  # overall and topic:Markets, once each
    assert len(receiver.received("/long")) == 2
