"""Multi-scale scoring of one key and the episode state machine (pure; see ``detector`` for the model).

``scan_key`` evaluates the buckets where the key received a negative story, from ``begin`` on, and returns
the alerts and the state after the last one. ``scan_keys`` does it for every key, parents first, so a child's
baseline can shrink toward its parent's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.alerts.detector import (
    HIGH_EVIDENCE,
    DetectorParams,
    KeyCounts,
    KeyState,
    Spike,
    baseline,
    bucket_end,
    severity_of,
    tail_probability,
)
from monitor.alerts.params import KIND_SHARE

MIN_REFERENCES = 3  # reference windows a key without a parent needs before it can alert
# Inside an episode opened by an alert under the "high" severity's evidence, a burst on a shorter scale at or
# above it alerts as a new story: a sudden crisis after a slow, marginal episode.
NEW_STORY_EVIDENCE = HIGH_EVIDENCE


@dataclass(frozen=True, slots=True)
class KeyScores:
    """Per evaluated bucket (candidate) of one key: the best admissible scale and its numbers."""

    t: np.ndarray  # (n,) bucket indices
    evidence: np.ndarray  # (n,) best log10(threshold / p) over admissible scales; -inf when none
    exit_evidence: np.ndarray  # (n,) best evidence over all scales (for the episode's end)
    scale: np.ndarray  # (n,) the scale that explains the alert: the shortest significant one
    count: np.ndarray  # (S, n)
    mean: np.ndarray  # (S, n)
    p: np.ndarray  # (S, n)
    threshold: np.ndarray  # (S, n) the p-value each window had to beat
    total: np.ndarray | None  # (S, n)


def candidates(kc: KeyCounts, begin: int, end: int) -> np.ndarray:
    """Buckets in ``[begin, end)`` where the key received a negative story."""
    m = (kc.negative > 0) & (kc.buckets >= begin) & (kc.buckets < end)
    return kc.buckets[m]


def share_of_parent(
    kc: KeyCounts, parent: KeyCounts, t: np.ndarray, width: int, params: DetectorParams
) -> np.ndarray:
    """The key's share of its parent's stories over the baseline span before the window (smoothed)."""
    span = params.baseline_days * params.buckets_per_day
    mine = kc.sums(t - width, span, negative=False)
    theirs = parent.sums(t - width, span, negative=False)
    return (mine + 0.5) / (theirs + 1.0)


def score_key(
    kc: KeyCounts,
    t: np.ndarray,
    params: DetectorParams,
    history_start: int,
    parent: KeyCounts | None = None,
    needs_sources: bool = False,
    kind_share: float = KIND_SHARE["overall"],
) -> KeyScores:
    widths = params.window_buckets()
    S, n = len(widths), len(t)
    count, mean, p = np.zeros((S, n)), np.zeros((S, n)), np.ones((S, n))
    threshold = np.zeros((S, n))
    total = None if kc.total is None else np.zeros((S, n))
    evidence = np.full((S, n), -np.inf)
    raw = np.full((S, n), -np.inf)
    span = params.baseline_days * params.buckets_per_day
    for s, (w, minutes) in enumerate(zip(widths, params.windows_minutes, strict=True)):
        x = kc.sums(t, w)
        prior = None
        weight: float | np.ndarray = kind_share
        if parent is not None:
            pm, _, pphi, _ = baseline(parent, t, w, params, history_start)
            share = share_of_parent(kc, parent, t, w, params)
            prior = (pm * share, pphi)
            weight = kind_share * np.minimum(1.0, share)
        mu, var, _, refs = baseline(kc, t, w, params, history_start, prior)
        pv = tail_probability(x, mu, var)
        threshold[s] = params.p_threshold(minutes, weight)
        e = np.log10(threshold[s]) - np.log10(np.maximum(pv, 1e-300))
        ok = x >= params.min_count
        if parent is None:  # a root key's baseline rests on its own reference windows only
            ok &= refs >= MIN_REFERENCES
        if total is not None:
            tot = kc.sums(t, w, negative=False)
            usual = (kc.sums(t - w, span) + 0.5) / (kc.sums(t - w, span, negative=False) + 1.0)
            ok &= x >= usual * tot
            total[s] = tot
        count[s], mean[s], p[s], raw[s] = x, mu, pv, e
        evidence[s] = np.where(ok, e, -np.inf)
        if needs_sources:
            evidence[s] = _source_rule(kc, parent, t, w, x, evidence[s], params)
    strongest = evidence.max(axis=0, initial=-np.inf)
    # The alert explains itself with the shortest window that is significant on its own (scales ascend).
    shortest = np.where(
        (evidence >= 0).any(axis=0), np.argmax(evidence >= 0, axis=0), np.argmax(evidence, axis=0)
    )
    exit_evidence = raw.max(axis=0, initial=-np.inf)
    return KeyScores(t, strongest, exit_evidence, shortest, count, mean, p, threshold, total)


def _source_rule(
    kc: KeyCounts,
    parent: KeyCounts | None,
    t: np.ndarray,
    w: int,
    x: np.ndarray,
    e: np.ndarray,
    params: DetectorParams,
) -> np.ndarray:
    """An entity whose negative stories all come from one source, while the stream around it had several
    sources of negative news in the same window, needs ``single_source_factor`` x more distinct stories.
    A single-source stream (one RSS feed, one wire) is not penalised: there is no second source to agree."""
    out = e.copy()
    for i in np.nonzero(np.isfinite(e) & (e >= 0))[0]:
        ti = int(t[i])
        if (
            x[i] < params.min_count * params.single_source_factor
            and kc.sources_in(ti, w) < 2
            and (parent is None or parent.sources_in(ti, w) >= 2)
        ):
            out[i] = -np.inf
    return out


def scan_key(
    kc: KeyCounts,
    params: DetectorParams,
    history_start: int,
    begin: int,
    end: int,
    state: KeyState | None = None,
    parent: KeyCounts | None = None,
    needs_sources: bool = False,
    kind_share: float = KIND_SHARE["overall"],
) -> tuple[list[Spike], KeyState]:
    """Run the episode state machine over the key's candidate buckets in ``[begin, end)``."""
    state = state or KeyState()
    t = candidates(kc, begin, end)
    if not len(t):
        return [], state
    sc = score_key(kc, t, params, history_start, parent, needs_sources, kind_share)
    per_day = params.buckets_per_day
    cooldown = math.ceil(params.cooldown_minutes * 60 / params.bucket_seconds)
    calm_buckets = math.ceil(params.calm_minutes * 60 / params.bucket_seconds)
    rearm, warm = params.rearm_days * per_day, history_start + params.min_history_days * per_day
    exit_level = -math.log10(params.exit_factor)
    in_ep, last, scale, opened = (
        state.in_episode,
        state.last_alert,
        state.episode_minutes,
        state.episode_evidence,
    )
    significant = state.last_significant if state.last_significant is not None else last
    spikes: list[Spike] = []
    for i, ti in enumerate(t.tolist()):
        if in_ep:
            if sc.exit_evidence[i] >= exit_level:
                significant = ti
            calm = significant is None or ti - significant >= calm_buckets
            if calm or (last is not None and ti - last >= rearm):
                in_ep = False
        if ti < warm or sc.evidence[i] < 0 or (last is not None and ti - last < cooldown):
            continue
        minutes = params.windows_minutes[int(sc.scale[i])]
        if in_ep and not _new_story(minutes, float(sc.evidence[i]), scale, opened):
            continue
        spike = _spike(sc, i, params)
        spikes.append(spike)
        in_ep, last, significant, scale, opened = True, ti, ti, minutes, spike.evidence
    return spikes, KeyState(in_ep, last, significant, scale, opened)


def _new_story(
    minutes: int, evidence: float, opened_minutes: int | None, opened_evidence: float | None
) -> bool:
    """Inside an episode that opened on a marginal alert, a strong burst on a shorter scale is a new story."""
    if opened_minutes is None or opened_evidence is None:
        return False
    return minutes < opened_minutes and evidence >= NEW_STORY_EVIDENCE > opened_evidence


def _spike(sc: KeyScores, i: int, params: DetectorParams) -> Spike:
    s = int(sc.scale[i])
    t = int(sc.t[i])
    end = bucket_end(t, params.bucket_seconds)
    count = int(round(sc.count[s, i]))
    total = None if sc.total is None else int(round(sc.total[s, i]))
    minutes = params.windows_minutes[s]
    return Spike(
        bucket=t,
        window_start=bucket_end(t - params.window_buckets()[s], params.bucket_seconds),
        window_end=end,
        severity=severity_of(float(sc.evidence[i])),
        count=count,
        expected=round(float(sc.mean[s, i]), 2),
        p_value=float(f"{sc.p[s, i]:.3g}"),
        evidence=round(float(sc.evidence[i]), 2),  # the strongest scale's (severity follows it)
        total=total,
        share=round(count / total, 3) if total else None,
        details={"window_minutes": minutes, "p_threshold": float(f"{sc.threshold[s, i]:.3g}")},
    )


def scan_keys(
    counts: Mapping[Any, KeyCounts],
    parents: Mapping[Any, Any],
    params: DetectorParams,
    history_start: int,
    end: int,
    resume: Mapping[Any, tuple[int, KeyState]] | None = None,
    with_sources: frozenset[str] = frozenset({"ticker", "entity"}),
) -> list[tuple[Any, Spike]]:
    """Every key's alerts before bucket ``end``, in firing order. ``resume`` says where a key's scan starts
    and in which state (the live scheduler resumes after its last stored alert); default: from the start."""
    out: list[tuple[Any, Spike]] = []
    for key, kc in counts.items():
        begin, state = (resume or {}).get(key, (history_start, KeyState()))
        parent = counts.get(parents.get(key))
        sources = getattr(key, "kind", "") in with_sources
        kind = getattr(key, "kind", "overall")
        share = KIND_SHARE.get(kind, KIND_SHARE["ticker"])  # a kind without a share of its own: as entities
        spikes, _ = scan_key(kc, params, history_start, begin, end, state, parent, sources, share)
        out.extend((key, s) for s in spikes)
    return sorted(out, key=lambda ks: (ks[1].bucket, str(ks[0])))
