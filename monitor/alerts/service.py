"""One scheduler run: detect new spikes from the database, store them as pending alerts, deliver what is due.

Each run loads the stories of the detector's history span (``DetectorParams.history_buckets``), counts them
with the backtest's code (``counting.count_keys``) and resumes each key's episode machine from its last stored
alert (or from ``catch_up`` ago), so a restart neither loses an alert nor repeats one, and a replay in
simulated time gives the same alerts as ``alerts backtest``. Alerts are keyed by key + window start and
inserted once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from monitor.alerts import queries as q
from monitor.alerts.counting import count_keys
from monitor.alerts.detector import KeyState, bucket_end, bucket_of
from monitor.alerts.episodes import scan_keys
from monitor.alerts.notifiers import Webhook, WebhookSender, digest_payload_for, idempotency_key, payload_for
from monitor.alerts.params import DetectorParams
from monitor.alerts.words import TitleExplainer, with_top_words
from monitor.settings import AlertSettings

log = logging.getLogger(__name__)


def params_from_settings(s: AlertSettings) -> DetectorParams:
    """Every detector parameter that ``AlertSettings`` exposes (same name), the rest at its default."""
    given = {
        f.name: getattr(s, f.name) for f in fields(DetectorParams) if f.name in AlertSettings.model_fields
    }
    return DetectorParams(**{**given, "windows_minutes": tuple(s.windows_minutes)})


@dataclass(frozen=True, slots=True)
class RunReport:
    keys: int = 0
    new_alerts: int = 0
    sent: int = 0
    failed: int = 0
    skipped: bool = False  # another instance holds the lock


def resume_point(
    last_alert: q.LastAlert | None, end: int, catch_up: int, params: DetectorParams
) -> tuple[int, KeyState]:
    """Where a key's scan resumes (bucket, state), given its last stored alert (window end, window minutes,
    evidence).

    Within ``rearm_days`` of that alert the scan restarts right after it, inside its episode, so a long
    episode never alerts twice and the episode's end is seen as a replay sees it. Older alerts no longer
    constrain anything: the scan covers the last ``catch_up`` buckets only (downtime does not flood the channel
    with stale alerts).
    """
    recent = end - catch_up
    if last_alert is None:
        return recent, KeyState()
    last = bucket_of(last_alert.window_end, params.bucket_seconds) - 1
    live = (
        last >= recent - params.rearm_days * params.buckets_per_day
    )  # may still hold the first scanned bucket
    state = KeyState(
        in_episode=live,
        last_alert=last,
        episode_minutes=last_alert.window_minutes,
        episode_evidence=last_alert.evidence,
    )
    return (last + 1 if live else recent), state


def detect_new_alerts(
    engine: Engine, now: datetime, params: DetectorParams, settings: AlertSettings
) -> tuple[int, int]:
    """Store alerts for episodes that began in buckets ending at or before ``now``. Returns (keys, new)."""
    bs = params.bucket_seconds
    end = bucket_of(now, bs)  # the bucket in progress is not evaluated
    catch_up = max(1, math.ceil(settings.catch_up_minutes * 60 / bs))
    start = bucket_end(end - params.history_buckets() - catch_up - 1, bs)
    with engine.connect() as conn:
        rows = q.load_story_rows(conn, start, bucket_end(end - 1, bs))
        first = q.first_story_time(conn)
        counts = count_keys(rows, bs, params.min_count, params.term_keys)
        last = q.last_alerts(conn)
        resume = {key: resume_point(last.get(key), end, catch_up, params) for key in counts.series}
    history = bucket_of(first, bs) if first is not None else end
    found = scan_keys(counts.series, counts.parents, params, history, end, resume)
    created = 0
    with engine.begin() as conn:
        for key, spike in found:
            if spike.bucket < end - catch_up:
                continue
            headlines = q.top_negative_headlines(conn, key, spike.window_start, spike.window_end)
            if q.insert_alert(conn, key, spike, now, headlines):
                created += 1
                log.info("alert %s %s: %s", key, spike.severity, spike.explanation())
    return len(counts.series), created


def retry_delay(attempts: int, settings: AlertSettings, retry_after: float | None = None) -> timedelta:
    """Delay before the next delivery run for an alert that has failed ``attempts`` times."""
    exp = min(attempts, settings.max_attempts)
    seconds = min(
        settings.max_backoff_seconds,
        max(settings.interval_seconds, settings.backoff_seconds) * 2 ** (exp - 1),
    )
    if retry_after is not None:
        seconds = max(seconds, retry_after)
    return timedelta(seconds=seconds)


@dataclass
class _Outcome:
    """Delivery progress of one alert during a run."""

    deliveries: dict[str, str]
    errors: list[str]
    routed: bool = False
    retry_after: float | None = None
    rejected: list[str] | None = None  # permanent refusals (never retried)


def _batches(pending: list[q.StoredAlert], digest_min: int) -> list[list[q.StoredAlert]]:
    """One digest message when a webhook has ``digest_min`` or more alerts waiting, else one per alert."""
    if digest_min and len(pending) >= digest_min:
        return [pending]
    return [[a] for a in pending]


def deliver_due(
    engine: Engine,
    sender: WebhookSender,
    hooks: list[Webhook],
    now: datetime,
    settings: AlertSettings,
    explainer: TitleExplainer | None = None,
) -> tuple[int, int]:
    """Post every due alert to the webhooks that route it and have not accepted it yet. Returns (sent, failed).

    Each webhook gets its alerts one message each, or one digest when many are waiting (a market-wide surge
    raises many keys at once). An acceptance is saved right after the post, so a crash never re-sends it.
    """
    with engine.connect() as conn:
        due = q.due_alerts(conn, now)
    due = with_top_words(
        due, explainer
    )  # the words behind each top headline (bounded; monitor/alerts/words.py)
    outcome = {a.id: _Outcome(dict(a.deliveries), []) for a in due}
    for hook in hooks:
        routed = [a for a in due if hook.accepts(a)]
        for a in routed:
            outcome[a.id].routed = True
        pending = [a for a in routed if hook.id not in outcome[a.id].deliveries]
        for batch in _batches(pending, settings.digest_min_alerts):
            payload = (
                payload_for(hook, batch[0], settings.dashboard_url)
                if len(batch) == 1
                else digest_payload_for(hook, batch, settings.dashboard_url)
            )
            key = idempotency_key(hook, [a.alert_key for a in batch])
            if hook.kind == "json":
                payload["idempotency_key"] = key
            result = sender.post(hook, payload, idempotency_key=key)
            for a in batch:
                o = outcome[a.id]
                if result.ok:
                    o.deliveries[hook.id] = now.isoformat()
                elif result.permanent:  # recorded as handled for this webhook, so it is never posted again
                    o.deliveries[hook.id] = f"rejected {now.isoformat()}: {result.error}"[:300]
                    o.rejected = [*(o.rejected or []), f"{hook.id}: {result.error}"]
                else:
                    o.errors.append(f"{hook.id}: {result.error}")
                    if result.retry_after is not None:
                        o.retry_after = max(o.retry_after or 0.0, result.retry_after)
            if result.ok or result.permanent:
                with engine.begin() as conn:
                    for a in batch:
                        q.save_deliveries(conn, a.id, outcome[a.id].deliveries)
    sent = failed = 0
    for alert in due:
        o = outcome[alert.id]
        note = None if o.routed else "not posted: no configured webhook routes this alert"
        if note:
            log.warning("alert %s: %s", alert.alert_key, note)
        error = "; ".join(o.errors) if o.errors else None
        next_at = now + retry_delay(alert.attempts + 1, settings, o.retry_after) if error else None
        if o.rejected and not error:  # every webhook answered; some refused for good: a terminal state
            error, note = "rejected, not retried: " + "; ".join(o.rejected), "rejected"
        with engine.begin() as conn:
            q.record_attempt(conn, alert, o.deliveries, error, now, next_at, note)
        if error:
            failed += 1
            log.error(
                "alert %s not delivered (attempt %d), retry at %s: %s",
                alert.alert_key,
                alert.attempts + 1,
                next_at,
                error,
            )
        else:
            sent += 1
    return sent, failed


class AlertService:
    """Everything one scheduler run does, with its dependencies passed in."""

    def __init__(
        self,
        engine: Engine,
        settings: AlertSettings,
        hooks: list[Webhook],
        sender: WebhookSender,
        params: DetectorParams | None = None,
        explainer: TitleExplainer | None = None,
    ) -> None:
        self.engine, self.settings, self.hooks, self.sender = engine, settings, hooks, sender
        self.params = params or params_from_settings(settings)
        self.explainer = explainer

    def run_once(self, now: datetime) -> RunReport:
        keys, created = detect_new_alerts(self.engine, now, self.params, self.settings)
        sent, failed = deliver_due(self.engine, self.sender, self.hooks, now, self.settings, self.explainer)
        return RunReport(keys=keys, new_alerts=created, sent=sent, failed=failed)
