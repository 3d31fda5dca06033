"""The negative-spike detector: a pure function of bucketed counts and time (no I/O, no clock reads).

For one key (overall, a topic or a ticker) the input is a contiguous run of equal buckets holding the number of
negative items and of all items (duplicates already excluded). For each bucket end ``t``:

1. ``x_t`` = negatives in the rolling window ``(t - window, t]``.
2. Baseline: the same time of day on each of the previous ``baseline_days`` days **of the same kind** (weekday
   vs weekend, so the weekly cycle is respected); robust centre = median, spread = 1.4826 x MAD, floored by
   the Poisson spread ``sqrt(baseline)`` and ``rel_floor x baseline`` so sparse and dense streams both work.
3. ``z_t = (x_t - baseline) / spread``; ``p`` = Poisson tail probability of seeing ``x_t`` or more.
4. ``surprise_t = z_t / max(z over the previous peak_lookback, z_enter)``: how this spike compares with the
   key's own recent peaks (a busy ticker with daily spikes needs a bigger one to be news).

A key **enters** a spike when ``z >= z_enter``, ``surprise >= surprise_min``, ``x >= min_count`` and the
negative share of the window ``>= share_floor``, and no alert fired within ``cooldown``. It stays in the spike
(no further alerts: hysteresis) until ``z < z_exit``. Every decision is causal: bucket ``t`` only uses data
up to ``t``, so a replay in simulated time gives exactly what the live scheduler would have said.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np

Severity = Literal["warning", "high", "critical"]
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class DetectorParams:
    bucket_seconds: int = 300
    window_buckets: int = 12  # rolling window = window_buckets x bucket_seconds
    baseline_days: int = 28
    min_count: int = 5
    share_floor: float = 0.35  # negative share of the window; ignored when totals are unknown
    z_enter: float = 4.0
    z_exit: float = 1.0
    surprise_min: float = 0.6
    peak_lookback_buckets: int = 2016  # one week of 5-minute buckets
    peak_gap_buckets: int = 36  # the spike's own ramp is not part of the peaks it is compared with
    cooldown_buckets: int = 288
    rel_floor: float = 0.1
    weekday_aware: bool = True
    min_history_days: int = 2  # no decision until this many same-kind days of history exist (warm-up)
    p_max: float = 1e-6  # Poisson tail probability of the count under the usual rate must be at most this

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.bucket_seconds * self.window_buckets)

    @property
    def buckets_per_day(self) -> int:
        return max(1, SECONDS_PER_DAY // self.bucket_seconds)

    def history_buckets(self) -> int:
        """Buckets of history the baseline and the peak memory need before the evaluated span."""
        return self.baseline_days * self.buckets_per_day + self.window_buckets + self.peak_lookback_buckets


@dataclass(frozen=True, slots=True)
class CountSeries:
    """Counts per bucket for one key; bucket ``i`` covers ``[start + i*bucket, start + (i+1)*bucket)``."""

    start: datetime
    bucket_seconds: int
    negative: np.ndarray  # (n,) int
    total: np.ndarray | None = None  # (n,) int, or None when only one count is known (e.g. NAB volumes)

    def __len__(self) -> int:
        return len(self.negative)

    def bucket_end(self, i: int) -> datetime:
        return self.start + timedelta(seconds=self.bucket_seconds * (i + 1))

    def index_of_end(self, end: datetime) -> int:
        """Index of the bucket that ends at ``end`` (rounded down to a bucket boundary)."""
        return int((end - self.start).total_seconds() // self.bucket_seconds) - 1


@dataclass(frozen=True, slots=True)
class SpikeScores:
    """Per-bucket numbers behind every decision (all arrays have the series' length)."""

    count: np.ndarray  # negatives in the window ending with the bucket
    total: np.ndarray | None
    baseline: np.ndarray
    spread: np.ndarray
    z: np.ndarray
    surprise: np.ndarray
    history_days: np.ndarray  # how many reference days the baseline had
    rate: np.ndarray  # usual count as a Poisson mean (winsorised mean of the reference days)


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the detector remembers about a key between evaluations."""

    in_spike: bool = False
    last_fired_index: int | None = None  # bucket index (in the series being scanned) of the last alert


@dataclass(frozen=True, slots=True)
class Spike:
    """One fired alert and the numbers that explain it."""

    index: int
    window_start: datetime
    window_end: datetime
    severity: Severity
    count: int
    baseline: float
    z: float
    p_value: float
    surprise: float
    total: int | None
    share: float | None
    details: dict[str, float | int | None] = field(default_factory=dict)

    def explanation(self) -> str:
        share = f", {self.share:.0%} of {self.total} items negative" if self.share is not None else ""
        return (
            f"{self.count} negative items in {_minutes(self.window_end - self.window_start)} vs a usual "
            f"{self.baseline:.1f} (z = {self.z:.1f}, p = {self.p_value:.1e}){share}"
        )


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    csum = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    idx = np.arange(1, len(values) + 1)
    return csum[idx] - csum[np.maximum(idx - width, 0)]


def seasonal_baseline(
    x: np.ndarray, start: datetime, params: DetectorParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median, spread, number of reference days and winsorised mean of ``x`` at the same time of day on
    earlier days of the same kind (causal). The median is zero on a sparse key; the mean is what a Poisson
    tail needs."""
    n = len(x)
    per_day = params.buckets_per_day
    lags = [per_day * k for k in range(1, params.baseline_days + 1) if per_day * k < n]
    if not lags:
        return np.zeros(n), np.ones(n), np.zeros(n, dtype=int), np.zeros(n)
    refs = np.full((len(lags), n), np.nan)
    ends = start.timestamp() + params.bucket_seconds * (np.arange(n) + 1)
    weekend = (
        (np.floor((ends - 1) / SECONDS_PER_DAY).astype(np.int64) + 3) % 7
    ) >= 5  # 1970-01-01 = Thursday
    for row, lag in enumerate(lags):
        refs[row, lag:] = x[: n - lag]
        if params.weekday_aware:
            refs[row, lag:][weekend[lag:] != weekend[: n - lag]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # buckets without history: all-NaN columns
        centre = np.nanmedian(refs, axis=0)
        mad = np.nanmedian(np.abs(refs - centre), axis=0) * 1.4826
    centre = np.nan_to_num(centre, nan=0.0)
    spread = np.maximum.reduce(
        [np.nan_to_num(mad, nan=0.0), np.sqrt(np.maximum(centre, 1.0)), params.rel_floor * centre]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = np.nan_to_num(np.nanmean(np.minimum(refs, centre + params.z_enter * spread), axis=0), nan=0.0)
    # A sparse key has too few items per time of day to estimate its rate there: half its average rate over
    # the whole baseline span is a floor, capped so it never masks the weekly cycle of a busy key.
    span = params.baseline_days * per_day
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(n)
    lo = np.maximum(idx - span, 0)
    pooled = np.where(idx > 0, (csum[idx] - csum[lo]) / np.maximum(idx - lo, 1), 0.0)
    rate = np.maximum(rate, np.minimum(0.5 * pooled, 2.0))
    return centre, spread, np.sum(~np.isnan(refs), axis=0), rate


def score_series(series: CountSeries, params: DetectorParams) -> SpikeScores:
    """Vectorised, causal scores for every bucket of ``series``."""
    neg = np.asarray(series.negative, dtype=float)
    count = rolling_sum(neg, params.window_buckets)
    total = (
        None
        if series.total is None
        else rolling_sum(np.asarray(series.total, dtype=float), params.window_buckets)
    )
    baseline, spread, days, rate = seasonal_baseline(count, series.start, params)
    z = (count - baseline) / spread
    peaks = _trailing_max(z, params.peak_lookback_buckets, params.peak_gap_buckets)
    surprise = np.where(z > 0, z / np.maximum(peaks, params.z_enter), 0.0)
    return SpikeScores(count, total, baseline, spread, z, surprise, days, rate)


def _trailing_max(z: np.ndarray, lookback: int, gap: int) -> np.ndarray:
    """max(z[t-gap-lookback+1 .. t-gap]) for each t (-inf when empty); O(n) with a monotone deque."""
    from collections import deque

    n = len(z)
    out = np.full(n, -np.inf)
    window: deque[int] = deque()
    for t in range(n):
        j = t - gap
        if j >= 0:
            while window and z[window[-1]] <= z[j]:
                window.pop()
            window.append(j)
        while window and window[0] <= j - lookback:
            window.popleft()
        if window:
            out[t] = z[window[0]]
    return out


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), exact for small means, normal approximation for large ones."""
    if k <= 0:
        return 1.0
    mean = max(mean, 1e-9)
    if mean > 500:
        zc = (k - 0.5 - mean) / math.sqrt(mean)
        return 0.5 * math.erfc(zc / math.sqrt(2))
    term = math.exp(-mean)
    below = 0.0
    for i in range(k):
        below += term
        term *= mean / (i + 1)
    return max(0.0, 1.0 - below) if below < 0.999999 else _upper_tail_sum(k, mean)


def _upper_tail_sum(k: int, mean: float) -> float:
    log_term = -mean + k * math.log(mean) - math.lgamma(k + 1)
    total, i = 0.0, k
    while True:
        t = math.exp(log_term)
        total += t
        if t < 1e-18 * max(total, 1e-300) or i > k + 10_000:
            return total
        i += 1
        log_term += math.log(mean) - math.log(i)


def severity_of(z: float, params: DetectorParams) -> Severity:
    if z >= 3 * params.z_enter:
        return "critical"
    if z >= 1.75 * params.z_enter:
        return "high"
    return "warning"


def scan(
    series: CountSeries, params: DetectorParams, begin: int = 0, state: KeyState = KeyState()
) -> tuple[list[Spike], KeyState]:
    """Run the enter/exit/cooldown state machine over buckets ``begin..n-1`` of ``series``.

    ``state`` is what was known before ``begin`` (indices refer to this series). Returns the alerts fired
    and the state after the last bucket. The same history always gives the same alerts.
    """
    scores = score_series(series, params)
    spikes: list[Spike] = []
    in_spike, last = state.in_spike, state.last_fired_index
    for t in range(begin, len(series)):
        z = float(scores.z[t])
        if in_spike:
            in_spike = z >= params.z_exit
            continue
        if last is not None and t - last < params.cooldown_buckets:
            continue
        if _enters(scores, t, params):
            spikes.append(_spike(series, scores, t, params))
            in_spike, last = True, t
    return spikes, KeyState(in_spike=in_spike, last_fired_index=last)


def _enters(scores: SpikeScores, t: int, params: DetectorParams) -> bool:
    if scores.history_days[t] < params.min_history_days:
        return False
    if scores.z[t] < params.z_enter or scores.count[t] < params.min_count:
        return False
    if scores.surprise[t] < params.surprise_min:
        return False
    if (
        params.p_max < 1.0
        and poisson_tail(int(round(scores.count[t])), max(float(scores.rate[t]), 0.05)) > params.p_max
    ):
        return False
    if scores.total is not None and scores.total[t] > 0:
        return bool(scores.count[t] / scores.total[t] >= params.share_floor)
    return True


def _spike(series: CountSeries, scores: SpikeScores, t: int, params: DetectorParams) -> Spike:
    end = series.bucket_end(t)
    count, base = int(round(scores.count[t])), float(scores.baseline[t])
    total = None if scores.total is None else int(round(scores.total[t]))
    share = (count / total) if total else None
    z = float(scores.z[t])
    return Spike(
        index=t,
        window_start=end - params.window,
        window_end=end,
        severity=severity_of(z, params),
        count=count,
        baseline=round(base, 2),
        z=round(z, 2),
        p_value=poisson_tail(count, max(float(scores.rate[t]), 0.05)),
        surprise=round(float(scores.surprise[t]), 3),
        total=total,
        share=None if share is None else round(share, 3),
        details={
            "spread": round(float(scores.spread[t]), 2),
            "usual_rate": round(float(scores.rate[t]), 2),
            "window_minutes": params.window_buckets * params.bucket_seconds // 60,
        },
    )


def anomaly_scores(series: CountSeries, params: DetectorParams) -> np.ndarray:
    """Streaming anomaly score per bucket for benchmark output: at each fired alert ``s / (1 + s)`` where
    ``s`` is the surprise (so 0.5 = as big as the recent peaks), 0 elsewhere."""
    spikes, _ = scan(series, params)
    out = np.zeros(len(series))
    for s in spikes:
        out[s.index] = s.surprise / (1.0 + s.surprise)
    return out


def series_from_counts(
    start: datetime, bucket_seconds: int, negative: Sequence[int], total: Sequence[int] | None = None
) -> CountSeries:
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return CountSeries(
        start,
        bucket_seconds,
        np.asarray(negative, dtype=np.int64),
        None if total is None else np.asarray(total, dtype=np.int64),
    )
