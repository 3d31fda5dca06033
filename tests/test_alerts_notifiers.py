"""Webhook delivery against a real local HTTP server: 200, 429 + Retry-After, 500, hanging receivers."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import pytest
import test_alerts_support as support
from pydantic import SecretStr
from test_alerts_support import WebhookReceiver

from monitor.alerts.notifiers import (
    Webhook,
    WebhookSender,
    json_payload,
    parse_retry_after,
    parse_webhooks,
    slack_digest_payload,
    slack_payload,
)
from monitor.alerts.queries import AlertKey, StoredAlert
from monitor.errors import ConfigError
from monitor.settings import AlertSettings

receiver = support.receiver  # the real local webhook receiver fixture

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


def alert(kind: str = "topic", value: str = "Markets") -> StoredAlert:
    start = datetime(2024, 3, 13, 14, 0, tzinfo=UTC)
    return StoredAlert(
        id=1,
        alert_key=f"{kind}:{value}@{start.isoformat()}",
        key=AlertKey(kind, value),  # type: ignore[arg-type]
        window_start=start,
        window_end=datetime(2024, 3, 13, 15, 0, tzinfo=UTC),
        fired_at=datetime(2024, 3, 13, 15, 1, tzinfo=UTC),
        severity="high",
        details={
            "count": 42,
            "expected": 6.5,
            "z": 9.1,
            "p_value": 1.2e-12,
            "share": 0.71,
            "total": 59,
            "explanation": "42 negative items in 1 h vs a usual 6.5 (z = 9.1, p = 1.2e-12)",
            "headlines": [
                {"title": "Bank <X> fails & markets slide", "url": "https://news.example/1"},
                {"title": "No link here", "url": None},
            ],
        },
        state="pending",
        attempts=0,
        last_error=None,
        next_attempt_at=None,
        sent_at=None,
        deliveries={},
    )


def sender(**kw: object) -> WebhookSender:
    defaults: dict[str, object] = {
        "timeout_seconds": 2.0,
        "max_per_second": 50.0,
        "attempts": 3,
        "backoff_seconds": 0.05,
        "max_retry_after_seconds": 5.0,
    }
    defaults.update(kw)
    return WebhookSender(**defaults)  # type: ignore[arg-type]


def hook(receiver: WebhookReceiver, path: str = SECRET_PATH, kind: str = "slack") -> Webhook:
    return Webhook(SecretStr(receiver.url(path)), kind)  # type: ignore[arg-type]


def test_slack_message_is_block_kit_with_numbers_headlines_and_dashboard_link(
    receiver: WebhookReceiver,
) -> None:
    s = sender()
    result = s.post(hook(receiver), slack_payload(alert(), "http://dash.example:8501"))
    assert result.ok and result.attempts == 1
    [req] = receiver.received()
    body = req.body
    assert body["text"].startswith("Negative news spike: Topic Markets")
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "header" and "context" in types
    fields = " ".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "42 vs 6.5 expected" in fields and "9.1" in fields and "71% of 59" in fields
    text = str(body["blocks"])
    assert "<https://news.example/1|Bank &lt;X&gt; fails &amp; markets slide>" in text  # escaped for mrkdwn
    assert "• No link here" in text
    assert "http://dash.example:8501" in text
    assert req.headers["Content-Type"] == "application/json"


def test_slack_digest_lists_every_key_most_severe_first(receiver: WebhookReceiver) -> None:
    calm = dataclasses.replace(alert("ticker", "ACME"), severity="warning")
    payload = slack_digest_payload([calm, alert("topic", "Markets")], "http://dash")
    assert sender().post(hook(receiver, "/d"), payload).ok
    body = receiver.received("/d")[0].body
    assert body["blocks"][0]["text"]["text"] == "Negative news spike on 2 keys (high)"
    listing = body["blocks"][1]["text"]["text"].splitlines()
    assert "`topic:Markets`" in listing[0] and "`ticker:ACME`" in listing[1]
    assert "http://dash" in str(body["blocks"][-1])


def test_generic_json_webhook_gets_the_alert_as_data(receiver: WebhookReceiver) -> None:
    s = sender()
    assert s.post(hook(receiver, "/hook", "json"), json_payload(alert(), "http://dash")).ok
    [req] = receiver.received()
    assert req.body["type"] == "finpulse.negative_spike"
    assert req.body["key"] == "topic:Markets" and req.body["count"] == 42 and req.body["z"] == 9.1
    assert req.body["headlines"][0]["url"] == "https://news.example/1"


def test_429_waits_for_retry_after_then_succeeds(receiver: WebhookReceiver) -> None:
    receiver.answer("/slow", ("429", 1), 200)
    result = sender().post(hook(receiver, "/slow"), {"text": "x"})
    first, second = receiver.received("/slow")
    assert result.ok and result.attempts == 2
    assert second.at - first.at >= 0.95  # honoured Retry-After: 1, not the 0.05 s backoff


def test_429_beyond_the_cap_is_left_for_a_later_run(receiver: WebhookReceiver) -> None:
    receiver.answer("/busy", ("429", 120))
    result = sender(max_retry_after_seconds=5.0).post(hook(receiver, "/busy"), {"text": "x"})
    assert not result.ok and result.status == 429 and result.retry_after == 120
    assert len(receiver.received("/busy")) == 1  # no hammering


def test_500_is_retried_with_backoff_then_reported(receiver: WebhookReceiver) -> None:
    receiver.answer("/down", 500)
    result = sender(attempts=3, backoff_seconds=0.1).post(hook(receiver, "/down"), {"text": "x"})
    reqs = receiver.received("/down")
    assert not result.ok and result.status == 500 and len(reqs) == 3
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # exponential: 0.1 s then 0.2 s
    assert "HTTP 500" in (result.error or "")


def test_500_then_recovery(receiver: WebhookReceiver) -> None:
    receiver.answer("/flaky", 500, 200)
    result = sender().post(hook(receiver, "/flaky"), {"text": "x"})
    assert result.ok and result.attempts == 2


def test_a_hanging_receiver_times_out_and_is_retried(receiver: WebhookReceiver) -> None:
    receiver.answer("/hang", ("hang", 3), 200)
    result = sender(timeout_seconds=0.5, attempts=2).post(hook(receiver, "/hang"), {"text": "x"})
    assert result.ok and result.attempts == 2


def test_a_hanging_receiver_gives_a_timeout_error_not_a_stuck_scheduler(receiver: WebhookReceiver) -> None:
    receiver.answer("/hang2", ("hang", 2))
    result = sender(timeout_seconds=0.3, attempts=1).post(hook(receiver, "/hang2"), {"text": "x"})
    assert not result.ok and "Timeout" in (result.error or "")


def test_at_most_one_message_per_second_per_webhook(receiver: WebhookReceiver) -> None:
    s = sender(max_per_second=1.0)
    for _ in range(3):
        assert s.post(hook(receiver, "/a"), {"text": "x"}).ok
    assert s.post(hook(receiver, "/b"), {"text": "x"}).ok  # another webhook is not held back by /a
    a = receiver.received("/a")
    assert a[1].at - a[0].at >= 0.95 and a[2].at - a[1].at >= 0.95
    assert receiver.received("/b")[0].at - a[2].at < 0.5


def test_webhook_urls_never_reach_logs_or_errors(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answer(SECRET_PATH, 500, 200)
    h = hook(receiver)
    s = sender()
    assert s.post(h, {"text": "x"}).ok
    down = Webhook(SecretStr("http://127.0.0.1:9/services/T1/B1/another-s3cr3t"), "slack")
    failed = sender(attempts=1).post(down, {"text": "x"})
    assert not failed.ok
    logged = caplog.text
    assert "s3cr3t" not in logged and "s3cr3t" not in (failed.error or "")
    assert h.id in logged and "s3cr3t" not in repr(h) and "s3cr3t" not in str(h.id)


def test_parse_webhooks_and_routing_filters() -> None:
    settings = AlertSettings(
        webhooks=SecretStr(
            '[{"url": "http://x/1"}, {"url": "http://x/2", "kind": "json", "topics": ["Markets"]},'
            ' {"url": "http://x/3", "tickers": ["aapl"]}]'
        ),
        slack_webhook_url=SecretStr("http://x/4"),
    )
    hooks = parse_webhooks(settings)
    assert [h.kind for h in hooks] == ["slack", "json", "slack", "slack"]
    ids = lambda a: [i for i, h in enumerate(hooks) if h.accepts(a)]  # noqa: E731
    assert ids(alert("topic", "Markets")) == [0, 1, 3]
    assert ids(alert("topic", "Macro")) == [0, 3]
    assert ids(alert("ticker", "AAPL")) == [0, 2, 3]
    assert ids(alert("overall", "all")) == [0, 3]


@pytest.mark.parametrize(
    "raw", ['{"url": "x"}', "not json", '[{"kind": "slack"}]', '[{"url": "u", "kind": "sms"}]']
)
def test_bad_webhook_settings_are_config_errors(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_webhooks(AlertSettings(webhooks=SecretStr(raw)))


def test_retry_after_parsing() -> None:
    now = datetime(2024, 3, 13, 15, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 13 Mar 2024 15:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_every_key_kind_has_a_title() -> None:
    """A story-term alert says which word piled up (a key kind the payloads did not know once crashed them)."""
    assert json_payload(alert("term", "lira"), None)["title"] == "Negative news spike: “lira” stories (high)"
    assert slack_payload(alert("ticker", "ACME"), None)["text"].startswith("Negative news spike: $ACME")
