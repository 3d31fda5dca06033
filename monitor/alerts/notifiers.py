"""Webhook delivery: Slack incoming webhooks (Block Kit) and generic JSON receivers.

- Routing: each webhook may restrict itself to some topics and/or tickers; a webhook without filters gets
  every alert, a filtered one only alerts whose key is in its filters.
- Backpressure is explicit: 429 waits ``Retry-After`` (up to a cap, beyond it the alert is retried on a later
  run), 5xx / timeouts / connection errors back off exponentially, and at most ``max_per_second`` posts per
  webhook. A failure is returned as data, never swallowed.
- Delivery is at least once: a post whose answer is lost (a read timeout after the receiver got it) is sent
  again. Every attempt for one alert and webhook carries the same ``Idempotency-Key`` header (and, for JSON
  receivers, an ``idempotency_key`` field), so a receiver that honours it drops the repeat; Slack incoming
  webhooks have no such key, so a Slack channel may rarely see a message twice.
- A permanent refusal (4xx other than 408 / 429: a revoked webhook, a payload it rejects) is not retried: the
  alert is recorded as ``rejected`` for that webhook with the receiver's answer.
- Webhook URLs are secrets: they are kept in ``SecretStr``, identified in logs and in the database by a short
  hash, scrubbed from error texts, and httpx's own request logging (which prints URLs) is turned down.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from monitor.alerts.queries import StoredAlert
from monitor.errors import ConfigError
from monitor.labels import TOPICS
from monitor.settings import AlertSettings

log = logging.getLogger(__name__)
WebhookKind = Literal["slack", "json"]
SEVERITY_EMOJI = {"warning": ":warning:", "high": ":rotating_light:", "critical": ":fire:"}
SLACK_SECTION_LIMIT = 3000  # characters of mrkdwn text per section block; Slack answers 400 beyond it
MAX_RETRY_AFTER_SECONDS = 86_400.0  # a receiver asking for more (or for inf) is taken to mean a day
WEBHOOK_KEYS = frozenset({"url", "kind", "topics", "tickers", "watchlist"})


@dataclass(frozen=True, slots=True)
class Webhook:
    url: SecretStr
    kind: WebhookKind = "slack"
    topics: frozenset[str] = frozenset()
    tickers: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        """Stable, non-secret name: a hash of the URL."""
        return "wh-" + hashlib.sha256(self.url.get_secret_value().encode()).hexdigest()[:12]

    def accepts(self, alert: StoredAlert) -> bool:
        if not self.topics and not self.tickers:
            return True
        if alert.key.kind == "topic":
            return alert.key.value in self.topics
        if alert.key.kind == "ticker":
            return alert.key.value.upper() in self.tickers
        return False


def parse_webhooks(settings: AlertSettings, watchlist: frozenset[str] = frozenset()) -> list[Webhook]:
    """Webhooks from ``FINPULSE_ALERTS_WEBHOOKS`` (JSON list) plus ``FINPULSE_ALERTS_SLACK_WEBHOOK_URL``. An
    entry with ``"watchlist": true`` also receives the alerts on every company of ``watchlist`` (the keys of
    ``FINPULSE_ENTITIES_WATCHLIST``)."""
    hooks: list[Webhook] = []
    raw = (
        settings.webhooks.get_secret_value()
        if isinstance(settings.webhooks, SecretStr)
        else settings.webhooks
    )
    try:
        entries = json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"FINPULSE_ALERTS_WEBHOOKS is not JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(entries, list):
        raise ConfigError("FINPULSE_ALERTS_WEBHOOKS must be a JSON list of objects")
    for i, entry in enumerate(entries):
        hooks.append(_webhook_from(entry, f"FINPULSE_ALERTS_WEBHOOKS[{i}]", watchlist))
    if settings.slack_webhook_url is not None:
        hooks.append(Webhook(settings.slack_webhook_url, "slack"))
    return hooks


def _names(entry: dict[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f'{where}.{key} must be a JSON list of names, e.g. ["Macro"], not {value!r:.60}')
    return [v.strip() for v in value]


def _webhook_from(entry: Any, where: str, watchlist: frozenset[str] = frozenset()) -> Webhook:
    """One validated webhook entry; every mistake is a ConfigError naming the entry and the field."""
    if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
        raise ConfigError(f"{where} needs a string 'url'")
    if unknown := sorted(set(entry) - WEBHOOK_KEYS):
        raise ConfigError(
            f"{where} has unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(WEBHOOK_KEYS))})"
        )
    if not entry["url"].startswith(("https://", "http://")):
        raise ConfigError(f"{where}.url must be an http(s) URL")
    kind = entry.get("kind", "slack")
    if kind not in ("slack", "json"):
        raise ConfigError(f"{where}.kind must be 'slack' or 'json', not {kind!r}")
    topics = _names(entry, "topics", where)
    if unknown_topics := sorted(set(topics) - set(TOPICS)):
        raise ConfigError(
            f"{where}.topics: unknown topic(s) {', '.join(unknown_topics)}; known: {', '.join(TOPICS)}"
        )
    tickers = [t.upper().lstrip("$") for t in _names(entry, "tickers", where)]
    if entry.get("watchlist") is True:
        if not watchlist:
            raise ConfigError(f"{where}.watchlist: no watchlist companies (set FINPULSE_ENTITIES_WATCHLIST)")
        tickers += [k.upper() for k in watchlist]
    return Webhook(SecretStr(entry["url"]), kind, frozenset(topics), frozenset(tickers))


# --- payloads -------------------------------------------------------------------------------------------


def _title(alert: StoredAlert) -> str:
    value = alert.key.value
    what = {
        "overall": "All news",
        "topic": f"Topic {value}",
        "ticker": f"${value}",
        "term": f"“{value}” stories",
    }
    return f"Negative news spike: {what.get(alert.key.kind, value)} ({alert.severity})"


def _slack_escape(text: str) -> str:
    """Text safe in mrkdwn: the three control characters escaped, so ``<!channel>``, ``<url|label>`` and
    ``<@U123>`` in a headline stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str | None, title: str) -> str:
    """A headline as a mrkdwn link when its URL is a plain http(s) URL, else as text. ``|`` and ``>`` in
    the URL would end the link early (and let the rest render as markup), so they are percent-encoded."""
    label = _slack_escape(title[:200]).replace("|", "¦")
    if not url or not url.startswith(("https://", "http://")) or len(url) > 500:
        return f"• {_slack_escape(title[:200])}"
    safe = (
        url.replace("&", "&amp;")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace("|", "%7C")
        .replace(" ", "%20")
    )
    return f"• <{safe}|{label}>"


def _headline_line(headline: dict[str, Any]) -> str:
    """A top headline as a link, followed by the words that drove its sentiment when they are known."""
    line = _slack_link(headline.get("url"), str(headline.get("title", "")))
    words = [str(w)[:40] for w in headline.get("words") or []][:5]
    return line + (" — _" + _slack_escape(", ".join(words)).replace("_", " ") + "_" if words else "")


def _fit_section(header: str, lines: Sequence[str], limit: int = SLACK_SECTION_LIMIT) -> str:
    """``header`` and as many whole ``lines`` as fit in one section's character limit."""
    text = header if len(header) <= limit - 2 else header[: limit - 3] + "…"
    for line in lines:
        if len(text) + 1 + len(line) > limit - 2:
            return text + "\n…"
        text += "\n" + line
    return text


def slack_payload(alert: StoredAlert, dashboard_url: str) -> dict[str, Any]:
    """Block Kit message: header, key and window, the numbers, top negative headlines, dashboard link."""
    d = alert.details
    share = f"{d['share']:.0%} of {d['total']}" if d.get("share") is not None else "n/a"
    fields = [
        f"*Key*\n`{alert.key}`",
        f"*Window (UTC)*\n{alert.window_start:%Y-%m-%d %H:%M} – {alert.window_end:%H:%M}",
        f"*Negative stories*\n{d['count']} vs {d.get('expected')} expected",
        f"*z / p*\n{d['z']} / {d['p_value']:.1e}",
        f"*Negative share*\n{share}",
        f"*Severity*\n{SEVERITY_EMOJI.get(alert.severity, '')} {alert.severity}",
    ]
    lines = [_headline_line(h) for h in d.get("headlines", [])[:5]]
    explanation = _slack_escape(str(d.get("explanation", "")))[: SLACK_SECTION_LIMIT - 1]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _title(alert)[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": explanation or " "}},
    ]
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _fit_section("*Top negative headlines*", lines)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{dashboard_url}|Open the dashboard> · alert {alert.alert_key}"}
            ],
        }
    )
    return {
        "text": f"{_title(alert)}: {_slack_escape(str(d.get('explanation', '')))}"[:3000],
        "blocks": blocks,
    }


def idempotency_key(hook: Webhook, alert_keys: Sequence[str]) -> str:
    """Stable for one webhook and one alert (or one digest of the same alerts): every retry carries it."""
    basis = "\x1f".join([hook.id, *sorted(alert_keys)])
    return "finpulse-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def json_payload(alert: StoredAlert, dashboard_url: str) -> dict[str, Any]:
    return {
        "type": "finpulse.negative_spike",
        "alert_key": alert.alert_key,
        "title": _title(alert),
        "dashboard_url": dashboard_url,
        **alert.as_json(),
    }


_SEVERITY_RANK = {"warning": 0, "high": 1, "critical": 2}


def slack_digest_payload(alerts: Sequence[StoredAlert], dashboard_url: str) -> dict[str, Any]:
    """One Block Kit message for many simultaneous alerts: one line of numbers per key, the most severe
    alert's top headlines, the dashboard link."""
    ranked = sorted(
        alerts, key=lambda a: (-_SEVERITY_RANK.get(a.severity, 0), -float(a.details.get("evidence", 0)))
    )
    worst = ranked[0]
    title = f"Negative news spike on {len(alerts)} keys ({worst.severity})"
    lines = [
        f"{SEVERITY_EMOJI.get(a.severity, '')} `{a.key}` {_slack_escape(str(a.details.get('explanation', ''))[:300])}"
        for a in ranked[:15]
    ]
    if len(ranked) > 15:
        lines.append(f"… and {len(ranked) - 15} more on the dashboard")
    heads = [_headline_line(h) for h in worst.details.get("headlines", [])[:5]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _fit_section(lines[0], lines[1:])}},
    ]
    if heads:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _fit_section(f"*Top negative headlines ({worst.key})*", heads),
                },
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{dashboard_url}|Open the dashboard>"}]}
    )
    return {"text": f"{title}: " + ", ".join(str(a.key) for a in ranked[:15]), "blocks": blocks}


def digest_payload_for(hook: Webhook, alerts: Sequence[StoredAlert], dashboard_url: str) -> dict[str, Any]:
    if hook.kind == "slack":
        return slack_digest_payload(alerts, dashboard_url)
    return {
        "type": "finpulse.negative_spike_digest",
        "dashboard_url": dashboard_url,
        "alerts": [json_payload(a, dashboard_url) for a in alerts],
    }


def payload_for(hook: Webhook, alert: StoredAlert, dashboard_url: str) -> dict[str, Any]:
    return slack_payload(alert, dashboard_url) if hook.kind == "slack" else json_payload(alert, dashboard_url)


# --- sending ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostResult:
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None  # never contains the URL
    retry_after: float | None = None  # seconds the receiver asked us to wait (when it exceeded our cap)
    permanent: bool = False  # a 4xx refusal (not 408/429): retrying the same post cannot succeed


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), between 0 and a day; ``inf``, ``1e12`` or a
    date centuries away mean "a day", ``nan`` or garbage mean "not given"."""
    if not value:
        return None
    value = value.strip()[:100]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


class WebhookSender:
    """Posts JSON to webhooks with retries, backoff, ``Retry-After`` and a per-webhook rate limit."""

    def __init__(
        self,
        timeout_seconds: float = 10.0,
        max_per_second: float = 1.0,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        max_retry_after_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for name in ("httpx", "httpcore"):  # their INFO/DEBUG records carry full request URLs
            logging.getLogger(name).setLevel(logging.WARNING)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            headers={"User-Agent": "finpulse-alerts"},
            follow_redirects=False,
        )
        self.min_interval = 1.0 / max_per_second if max_per_second > 0 else 0.0
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.max_retry_after = max_retry_after_seconds
        self._sleep, self._clock = sleep, clock
        self._last_post: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, s: AlertSettings) -> WebhookSender:
        return cls(
            s.timeout_seconds,
            s.max_per_second,
            s.retries_per_run,
            s.backoff_seconds,
            s.max_retry_after_seconds,
        )

    def close(self) -> None:
        self._client.close()

    def _throttle(self, hook_id: str) -> None:
        with self._lock:
            last = self._last_post.get(hook_id)
            if last is not None:
                wait = self.min_interval - (self._clock() - last)
                if wait > 0:
                    self._sleep(wait)
            self._last_post[hook_id] = self._clock()

    def post(self, hook: Webhook, payload: dict[str, Any], idempotency_key: str | None = None) -> PostResult:
        """Post with retries. ``idempotency_key`` (the same on every attempt and every run for one alert and
        webhook) goes out as the ``Idempotency-Key`` header."""
        url = hook.url.get_secret_value()
        error, status = "not attempted", None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        for attempt in range(1, self.attempts + 1):
            self._throttle(hook.id)
            wait = self.backoff_seconds * 2 ** (attempt - 1)
            try:
                resp = self._client.post(url, json=payload, headers=headers)
            except httpx.HTTPError as exc:
                error, status = _scrub(f"{type(exc).__name__}: {exc}", url), None
            else:
                status = resp.status_code
                if 200 <= status < 300:
                    log.info("webhook %s accepted the message (attempt %d)", hook.id, attempt)
                    return PostResult(True, attempt, status)
                error = _scrub(f"HTTP {status}: {resp.text[:200]}", url)
                if 400 <= status < 500 and status not in (408, 429):
                    log.error("webhook %s refused the message (%s); not retrying", hook.id, error)
                    return PostResult(False, attempt, status, error, permanent=True)
                if status == 429:
                    asked = parse_retry_after(resp.headers.get("Retry-After"))
                    if asked is not None and asked > self.max_retry_after:
                        log.warning(
                            "webhook %s rate-limited us for %.0f s; retrying on a later run", hook.id, asked
                        )
                        return PostResult(False, attempt, status, error, asked)
                    wait = asked if asked is not None else wait
            log.warning("webhook %s attempt %d/%d failed: %s", hook.id, attempt, self.attempts, error)
            if attempt < self.attempts:
                self._sleep(wait)
        return PostResult(False, self.attempts, status, error)


def _scrub(text: str, url: str) -> str:
    return text.replace(url, "<webhook>") if url else text
