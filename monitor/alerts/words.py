"""The words behind an alert's top headlines, added when alerts are built for delivery (never at detection).

Cost is bounded: at most ``MAX_ALERTS`` alerts per delivery run, their stored top headlines (five at most),
each explained once with one batch of (words + 1) rows. The classifier is loaded on the first alert that
needs it. When the model cannot be loaded or fails, alerts go out without words (the failure is logged), so
an explanation never delays or blocks a delivery.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from monitor.alerts.queries import StoredAlert
from monitor.settings import ModelSettings

log = logging.getLogger(__name__)
MAX_ALERTS = 20
HEADLINES_PER_ALERT = 5
TitleExplainer = Callable[[Sequence[str]], list[list[str]]]  # titles -> top words of each


def lazy_explainer(model: ModelSettings, k: int) -> TitleExplainer | None:
    """Top ``k`` words driving each title's sentiment tag, with the classifier loaded on first use (a model
    that fails to load is not tried again by this process); None when ``k`` is 0 (explanations off)."""
    if k <= 0:
        return None
    loaded: list[Any] = []

    def explain_titles(titles: Sequence[str]) -> list[list[str]]:
        from monitor.classify import load_classifier
        from monitor.explain import explain, top_words

        if not loaded:
            try:
                loaded.append(load_classifier(model))
            except Exception as exc:  # noqa: BLE001 - reported once below, then every call fails fast
                loaded.append(exc)
                raise
        if isinstance(loaded[0], Exception):
            raise RuntimeError(f"the model did not load: {loaded[0]}")
        return [top_words(e, "sentiment", k) for e in explain(loaded[0], titles)]

    return explain_titles


def with_top_words(alerts: Sequence[StoredAlert], explain_titles: TitleExplainer | None) -> list[StoredAlert]:
    """The alerts with ``words`` on each of their top headlines (the first ``MAX_ALERTS`` alerts; the rest,
    and all of them when explaining fails, unchanged)."""
    if explain_titles is None or not alerts:
        return list(alerts)
    chosen = alerts[:MAX_ALERTS]
    titles = [str(h.get("title", "")) for a in chosen for h in _headlines(a)]
    try:
        words = explain_titles(titles) if titles else []
    except Exception as exc:  # noqa: BLE001 - an explanation is an extra: delivery goes on without it
        log.warning("alert headlines not explained (%s: %s)", type(exc).__name__, str(exc)[:200])
        return list(alerts)
    out, i = [], 0
    for a in chosen:
        heads = []
        for h in _headlines(a):
            heads.append({**h, "words": words[i]})
            i += 1
        out.append(dataclasses.replace(a, details={**a.details, "headlines": heads}) if heads else a)
    return out + list(alerts[MAX_ALERTS:])


def _headlines(alert: StoredAlert) -> list[dict[str, Any]]:
    heads = alert.details.get("headlines") or []
    return [h for h in heads[:HEADLINES_PER_ALERT] if isinstance(h, dict)]
