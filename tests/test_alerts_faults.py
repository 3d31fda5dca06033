"""Hostile receivers and hostile headlines against the real local webhook receiver: Retry-After: inf, mrkdwn
injection, Slack's 3,000-character sections, a permanent 4xx, a receiver that takes the post then times out,
SIGTERM during a post, webhook filters given as a string."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_alerts_support as support
from pydantic import SecretStr
from test_alerts_notifiers import alert
from test_alerts_service import alert_settings, service
from test_alerts_support import NOW, WebhookReceiver, seed_history, seed_surge

from monitor.alerts.notifiers import (
    SLACK_SECTION_LIMIT,
    Webhook,
    WebhookSender,
    parse_retry_after,
    parse_webhooks,
    slack_digest_payload,
    slack_payload,
)
from monitor.alerts.queries import list_alerts
from monitor.alerts.service import retry_delay
from monitor.errors import ConfigError
from monitor.settings import AlertSettings
from monitor.store import init_db, make_engine

receiver = support.receiver


def hook(receiver: WebhookReceiver, path: str, kind: str = "json") -> Webhook:
    return Webhook(SecretStr(receiver.url(path)), kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["inf", "1e12", "-inf", "nan", "Fri, 31 Dec 9999 23:59:59 GMT", "99999999999999"]
)
def test_retry_after_is_bounded_and_never_breaks_the_run(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or 0 <= seconds <= 86_400
    retry_delay(3, AlertSettings(), seconds)  # timedelta arithmetic must not overflow


def test_429_with_infinite_retry_after_is_left_for_a_later_run(receiver: WebhookReceiver) -> None:
    receiver.answer("/inf", ("429", "inf"))
    result = WebhookSender(attempts=3, backoff_seconds=0, max_retry_after_seconds=5).post(
        hook(receiver, "/inf"), {}
    )
    assert not result.ok and result.retry_after == 86_400 and len(receiver.received("/inf")) == 1


HOSTILE_HEADLINES = [
    {"title": "<!channel> Bank | fails > markets <@U123>", "url": "https://news.example/a|b>c<!here>"},
    {"title": "Click *here* <https://evil.example|your bank>", "url": "javascript:alert(1)"},
    {"title": "x" * 5000, "url": "https://news.example/" + "u" * 1990},
    {"title": "Long link", "url": "https://news.example/?" + "q" * 480},
    {"title": "Fine headline", "url": "https://news.example/ok"},
]


def _mrkdwn_texts(payload: dict[str, object]) -> list[str]:
    out = []
    for block in payload["blocks"]:  # type: ignore[attr-defined]
        text = block.get("text", {})
        if isinstance(text, dict) and text.get("type") == "mrkdwn":
            out.append(text["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", [])]
    return out


def test_slack_messages_escape_headlines_and_fit_sections() -> None:
    a = alert()
    a = dataclasses.replace(
        a, details={**a.details, "headlines": HOSTILE_HEADLINES, "explanation": "<!everyone> " + "e" * 4000}
    )
    many = [
        dataclasses.replace(a, id=i, key=dataclasses.replace(a.key, value=f"Topic{i}")) for i in range(20)
    ]
    for payload in (slack_payload(a, "http://dash"), slack_digest_payload(many, "http://dash")):
        texts = _mrkdwn_texts(payload)
        joined = "\n".join(texts)
        assert all(len(t) <= SLACK_SECTION_LIMIT for t in texts), [len(t) for t in texts]
        for bad in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil", "javascript:"):
            assert bad not in joined, bad
        for line in joined.splitlines():
            if line.startswith("• <"):  # a link: exactly one <…|…> and nothing after it
                assert (
                    line.count("<") == 1
                    and line.count(">") == 1
                    and line.endswith(">")
                    and line.count("|") == 1
                )
        assert len(str(payload["text"])) <= 3000


def test_a_permanent_4xx_is_not_retried_and_the_alert_is_rejected(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    init_db(engine)
    seed_history(engine, NOW)
    seed_surge(engine, NOW, n=30)
    receiver.answer("/gone", 404)
    s = alert_settings("/gone", receiver=receiver, retries_per_run=3)
    first = service(engine, s).run_once(NOW)
    assert first.new_alerts >= 1 and len(receiver.received("/gone")) == first.new_alerts  # one attempt each
    for later in (timedelta(minutes=5), timedelta(hours=2), timedelta(days=1)):
        service(engine, s).run_once(NOW + later)
    assert len(receiver.received("/gone")) == first.new_alerts  # never again
    with engine.connect() as conn:
        stored = list_alerts(conn)
    assert {a.state for a in stored} == {"rejected"} and all(
        "HTTP 404" in (a.last_error or "") for a in stored
    )


def test_a_receiver_that_takes_the_post_then_times_out_gets_the_same_idempotency_key(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    init_db(engine)
    seed_history(engine, NOW)
    seed_surge(engine, NOW, n=30)
    receiver.answer("/slow", ("hang", 3), 200)  # reads the post, answers after our 1 s timeout, then is fine
    s = alert_settings(
        "/slow", receiver=receiver, retries_per_run=2, timeout_seconds=1.0, digest_min_alerts=0
    )
    report = service(engine, s).run_once(NOW)
    posts = receiver.received("/slow")
    assert report.sent == report.new_alerts >= 1 and len(posts) == report.new_alerts + 1  # one re-sent
    keys = [p.headers.get("Idempotency-Key") for p in posts]
    assert all(keys) and len(set(keys)) == report.new_alerts  # the retry repeated the first post's key
    assert all(p.body["idempotency_key"] == p.headers["Idempotency-Key"] for p in posts)


def test_sigterm_waits_for_the_post_in_flight_before_releasing_the_lock(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    init_db(engine)
    now = datetime.now(UTC)
    seed_history(engine, now)
    seed_surge(engine, now, n=30)
    receiver.answer("/slow", ("hang", 4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update({
        "FINPULSE_DATABASE_URL": url, "FINPULSE_ALERTS_INTERVAL_SECONDS": "60", "FINPULSE_ALERTS_BASELINE_DAYS": "7",
        "FINPULSE_ALERTS_MIN_HISTORY_DAYS": "2", "FINPULSE_ALERTS_MIN_COUNT": "5", "FINPULSE_ALERTS_TERM_KEYS": "false",
        "FINPULSE_ALERTS_MAX_PER_SECOND": "100",
        "FINPULSE_ALERTS_DIGEST_MIN_ALERTS": "1", "FINPULSE_ALERTS_TIMEOUT_SECONDS": "30",
        "FINPULSE_ALERTS_WEBHOOKS": f'[{{"url": "{receiver.url("/slow")}", "kind": "json"}}]',
        "FINPULSE_ALERTS_LOCK_NAME": f"live-{uuid.uuid4().hex}", "FINPULSE_HEALTH_DIR": str(tmp_path / "health"),
        "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    })  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "scheduler"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not receiver.received("/slow") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.received("/slow"), "the scheduler never posted"
    proc.send_signal(signal.SIGTERM)  # while the receiver is still holding the post
    log = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, log[-2000:]
    with engine.connect() as conn:
        stored = list_alerts(conn)
        holders = conn.exec_driver_sql("SELECT count(*) FROM locks").scalar_one()
    assert stored and {a.state for a in stored} == {"sent"}, log[-2000:]  # the answer was recorded
    assert holders == 0  # and only then the lock released


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{"url": "https://h.example/x", "topics": "Macro"}', "topics must be a JSON list"),
        ('{"url": "https://h.example/x", "tickers": "ACME"}', "tickers must be a JSON list"),
        ('{"url": "https://h.example/x", "topics": ["Macroo"]}', "unknown topic(s) Macroo"),
        ('{"url": "https://h.example/x", "topic": ["Macro"]}', "unknown field(s) topic"),
        ('{"url": "ftp://h.example/x"}', "http(s) URL"),
    ],
)
def test_webhook_config_mistakes_fail_at_start_with_a_clear_message(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_webhooks(AlertSettings(webhooks=SecretStr(f"[{entry}]")))


def test_scheduler_refuses_to_start_on_a_bad_webhook_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    env.update(
        {
            "FINPULSE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "FINPULSE_ALERTS_WEBHOOKS": '[{"url": "https://h.example/x", "topics": "Macro"}]',
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "scheduler"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "topics must be a JSON list" in done.stderr


def test_a_scheduler_whose_runs_fail_turns_unhealthy(tmp_path: Path) -> None:
    from monitor.alerts.locks import DatabaseLock
    from monitor.alerts.scheduler import tracked_run
    from monitor.health import Progress, judge

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    init_db(engine)
    progress = Progress(tmp_path, "scheduler")
    s = AlertSettings(lock_name="t")
    svc = service(engine, s)
    lock = DatabaseLock(engine, "t", timedelta(seconds=60))
    assert tracked_run(svc, lock, progress) is not None
    assert judge(tmp_path / "scheduler.json", 60, time.time()).healthy
    with engine.begin() as conn:  # the runs start failing (a schema gone wrong)
        conn.exec_driver_sql("DROP VIEW tagged_news")
        conn.exec_driver_sql("DROP TABLE news_tags")
    time.sleep(1.1)
    assert tracked_run(svc, lock, progress) is None
    verdict = judge(tmp_path / "scheduler.json", 1, time.time())
    assert not verdict.healthy and "run failed" in verdict.message
