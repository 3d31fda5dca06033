"""The negative-burst detector: a pure function of counted items and a bucket index (no I/O, no clock reads).

Per key (overall, a topic, a ticker or linked entity) the input is the key's distinct stories (repeats already
excluded) as sorted bucket indices with weights (:class:`KeyCounts`). At every bucket where the key received a
negative story, each window scale ``w`` in ``windows_minutes`` (default 1 h, 6 h, 24 h, 72 h) is tested:

1. ``x`` = negative stories in ``(t - w, t]``.
2. Reference windows: the same window at the same time of day on the previous ``baseline_days`` days that
   hold as many weekend hours as the current one (so a Monday-morning 24 h window is compared with other
   windows spanning a Sunday), none overlapping the current window, none before the stream's history begins. Each reference is winsorised at ``median + 3 max(MAD sd, sqrt(median)) + 3`` so the key's own
   past incidents do not inflate its baseline.
3. The expected count is a Poisson-gamma posterior mean: ``(sum(refs) + 0.5 + k mu_parent) / (n + k)`` with
   ``k = prior_weight`` pseudo reference days at the parent's rate scaled by the key's share of the parent's
   items (shrinkage toward the parent: entity or topic -> overall). The predictive law is negative binomial
   with variance ``mu + mu^2 (phi + 1/shape)``: ``phi`` is the over-dispersion seen in the references (at
   least the parent's), ``1/shape`` the uncertainty of a rate estimated from few counts. A new key with no
   history therefore has a tiny but honest baseline and alerts only on ``min_count`` distinct stories.
4. The window's p-value is compared with a threshold set by one parameter for the whole stream,
   ``false_alerts_per_month`` (weighted Bonferroni, ``DetectorParams.p_threshold``): ``p_w = budget x (w / 1
   month) / scales x weight``, where a key's weight is its kind's share of the budget (overall, topics,
   entities: a third each) times its share of that kind's stories. A 20-a-day feed and a 1,000-a-day wire
   then spend the same budget however many topics and entities they mention. Evidence
   ``E = log10(p_w / p)``; the window counts only if ``x >= min_count`` and its negative share is at least
   the key's usual share.

A key enters an episode (one alert) when its best scale has ``E >= 0``, warm-up is over and the last alert is
``cooldown`` or more ago; it stays in the episode (no alerts) until ``cooldown`` has passed without a tested
bucket reaching ``E >= -log10(exit_factor)`` on some scale (a slow build that hovers at the threshold stays one
episode), or ``rearm`` has passed. When the episode opened on a marginal alert (evidence under 2), a burst on
a shorter scale at least 100x past its threshold is a new story and alerts (after the cooldown): a sudden
crisis is not swallowed by a slow, marginal episode before it. Severity follows ``E``. Every decision is
causal, and a decision at bucket ``t`` reads only items in the ``lookback_buckets()`` before it, so the live
scheduler (which loads that much history) and a replay give the same alerts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from monitor.alerts.params import DetectorParams

Severity = Literal["warning", "high", "critical"]


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """A key's distinct stories: sorted unique bucket indices (``epoch // bucket_seconds``) with counts.

    ``total`` is None for volume-only series (benchmarks); ``neg_sources`` holds one source code per negative
    story (bucket order), or None when sources are not tracked for this key.
    """

    buckets: np.ndarray  # (m,) int64, strictly increasing
    negative: np.ndarray  # (m,) negative stories per bucket
    total: np.ndarray | None = None  # (m,) all stories per bucket
    neg_buckets: np.ndarray | None = None  # (k,) bucket of each negative story, sorted
    neg_sources: np.ndarray | None = None  # (k,) source code of each negative story
    neg_cs: np.ndarray = field(init=False, repr=False)  # (m + 1,) running sums, for window counts
    tot_cs: np.ndarray = field(init=False, repr=False)
    rank_table: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "neg_cs", np.concatenate([[0.0], np.cumsum(self.negative, dtype=float)]))
        tot = self.negative if self.total is None else self.total
        object.__setattr__(self, "tot_cs", np.concatenate([[0.0], np.cumsum(tot, dtype=float)]))
        span = int(self.buckets[-1] - self.buckets[0]) + 1 if len(self.buckets) else 0
        table = None
        if len(self.buckets) and span <= 8 * len(self.buckets):  # dense: O(1) lookups beat binary search
            marks = np.zeros(span + 1, dtype=np.int64)
            np.add.at(marks, self.buckets - self.buckets[0] + 1, 1)
            table = np.cumsum(marks)
        object.__setattr__(self, "rank_table", table)

    def sums(self, t: np.ndarray, width: int | np.ndarray, negative: bool = True) -> np.ndarray:
        """Counts in buckets ``(t - width, t]`` for every ``t``."""
        cs = self.neg_cs if negative else self.tot_cs
        return cs[self._rank(t)] - cs[self._rank(t - width)]

    def _rank(self, t: np.ndarray) -> np.ndarray:
        """Number of stored buckets ``<= t``: a table lookup over the key's span (dense keys), else a binary
        search (sparse keys)."""
        if self.rank_table is None:
            return np.searchsorted(self.buckets, t, side="right")
        lo = int(self.buckets[0])
        return self.rank_table[np.clip(t - lo + 1, 0, len(self.rank_table) - 1)]

    def sources_in(self, t: int, width: int) -> int:
        if self.neg_buckets is None or self.neg_sources is None:
            return 0
        lo, hi = np.searchsorted(self.neg_buckets, [t - width, t], side="right")
        return len(np.unique(self.neg_sources[lo:hi]))


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the detector remembers about a key: the bucket of its last alert, the window (minutes) that
    explained it and its evidence, whether it is still in that alert's episode, and the episode's last bucket
    with a significant window (None: the alert's)."""

    in_episode: bool = False
    last_alert: int | None = None
    last_significant: int | None = None
    episode_minutes: int | None = None
    episode_evidence: float | None = None


@dataclass(frozen=True, slots=True)
class Spike:
    """One fired alert and the numbers that explain it."""

    bucket: int  # index of the bucket whose end fired it
    window_start: datetime
    window_end: datetime
    severity: Severity
    count: int
    expected: float
    p_value: float
    evidence: float  # log10(threshold / p) of the firing scale
    total: int | None
    share: float | None
    details: dict[str, float | int | None] = field(default_factory=dict)

    def explanation(self) -> str:
        share = f"; {self.share:.0%} of {self.total} stories negative" if self.share is not None else ""
        return (
            f"{self.count} negative stories in {_duration(self.window_end - self.window_start)} vs "
            f"{self.expected:.1f} expected (p = {self.p_value:.1e}){share}"
        )


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def bucket_of(ts: datetime, bucket_seconds: int) -> int:
    """Absolute bucket index of a time: buckets line up with UTC midnights for every feed and both paths."""
    return int(ts.timestamp() // bucket_seconds)


def bucket_end(index: int, bucket_seconds: int) -> datetime:
    return datetime.fromtimestamp((index + 1) * bucket_seconds, tz=UTC)


def weekend_buckets(t: np.ndarray, per_day: int) -> np.ndarray:
    """Number of Saturday/Sunday (UTC) buckets among buckets ``0..t`` (1970-01-01, day 0, was a Thursday,
    so days 2 and 3 of every week are the weekend)."""
    upto = np.asarray(t, dtype=np.int64) + 1
    days, rem = upto // per_day, upto % per_day
    full = 2 * (days // 7) + np.clip(days % 7 - 2, 0, 2)
    return per_day * full + rem * ((days + 3) % 7 >= 5)


def reference_stats(
    kc: KeyCounts, t: np.ndarray, width: int, params: DetectorParams, history_start: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of the winsorised same-kind reference windows before each ``t``, their number, and their
    over-dispersion ``phi`` (variance = mean + phi mean^2)."""
    per_day = params.buckets_per_day
    gap = math.ceil(width / per_day)
    lags = np.arange(gap, gap + params.baseline_days, dtype=np.int64) * per_day  # (L,)
    ref_t = t[None, :] - lags[:, None]  # (L, n)
    valid = ref_t - width + 1 >= history_start
    if params.weekday_aware:  # a reference must hold as many weekend hours as the window itself
        share = weekend_buckets(t, params.buckets_per_day) - weekend_buckets(
            t - width, params.buckets_per_day
        )
        ref_share = weekend_buckets(ref_t, params.buckets_per_day) - weekend_buckets(
            ref_t - width, params.buckets_per_day
        )
        valid &= ref_share == share[None, :]
    refs = np.where(valid, kc.sums(ref_t.ravel(), width).reshape(ref_t.shape), np.nan)  # (L, n)
    n = valid.sum(axis=0)
    med = _column_median(refs, valid, n)
    spread = 1.4826 * _column_median(np.abs(np.nan_to_num(refs) - med), valid, n)  # robust sd (MAD)
    cap = med + 3 * np.maximum(spread, np.sqrt(med)) + 3
    capped = np.where(valid, np.minimum(np.nan_to_num(refs), cap), 0.0)
    total = capped.sum(axis=0)
    mean = total / np.maximum(n, 1)
    robust_var = np.maximum(
        spread**2, (np.where(valid, capped - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1)
    )
    phi = np.where(
        (n >= 4) & (mean > 0), np.maximum(0.0, robust_var - mean) / np.maximum(mean, 1e-9) ** 2, 0.0
    )
    return total, n, np.minimum(phi, 4.0)


def _column_median(refs: np.ndarray, valid: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of the valid entries of each column (0 where none): invalid ones sort last."""
    if not refs.size:
        return np.zeros(refs.shape[1])
    ordered = np.sort(np.where(valid, refs, np.inf), axis=0)
    cols = np.arange(refs.shape[1])
    lo = ordered[np.maximum((n - 1) // 2, 0), cols]
    hi = ordered[np.maximum(n // 2, 0), cols]
    return np.where(n > 0, (lo + hi) / 2, 0.0)


def baseline(
    kc: KeyCounts,
    t: np.ndarray,
    width: int,
    params: DetectorParams,
    history_start: int,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predictive mean, variance, phi and number of reference windows of the window count at ``t``. ``prior`` = (mean, phi) of the parent
    at the same buckets, already scaled by the key's share of the parent's stories."""
    ref_sum, n, phi = reference_stats(kc, t, width, params, history_start)
    k = params.prior_weight if prior is not None else 0.0
    shape = ref_sum + 0.5 + (k * prior[0] if prior is not None else 0.0)  # Gamma posterior shape
    mean = shape / np.maximum(n + k, 1.0)
    if prior is not None:
        phi = np.maximum(phi, prior[1])
    # Windows longer than a day overlap their neighbours at one-day lags: each story is counted in
    # width/day references, so the rate is known from that many times fewer independent counts.
    shape = shape * min(1.0, params.buckets_per_day / width)
    return mean, mean + mean**2 * (phi + 1.0 / shape), phi, n


def tail_probability(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """P(X >= x) under a negative binomial with this mean and variance (Poisson when var == mean)."""
    mean = np.maximum(mean, 1e-9)
    var = np.maximum(var, mean * (1 + 1e-9))
    r = mean**2 / (var - mean)
    return stats.nbinom.sf(np.asarray(x) - 1, r, mean / var)


HIGH_EVIDENCE = 2.0  # log10 past the threshold: a "high" alert (100x), critical at twice that (10,000x)


def severity_of(evidence: float) -> Severity:
    if evidence >= 2 * HIGH_EVIDENCE:
        return "critical"
    if evidence >= HIGH_EVIDENCE:
        return "high"
    return "warning"


def series_from_counts(
    start: datetime, bucket_seconds: int, negative: npt.ArrayLike, total: npt.ArrayLike | None = None
) -> KeyCounts:
    """A dense per-bucket series (e.g. NAB volumes) as :class:`KeyCounts`, bucket 0 at ``start``."""
    first = bucket_of(start if start.tzinfo else start.replace(tzinfo=UTC), bucket_seconds)
    neg = np.asarray(negative, dtype=float)
    keep = neg > 0 if total is None else (neg > 0) | (np.asarray(total) > 0)
    idx = np.nonzero(keep)[0]
    return KeyCounts(
        first + idx.astype(np.int64), neg[idx], None if total is None else np.asarray(total, dtype=float)[idx]
    )
