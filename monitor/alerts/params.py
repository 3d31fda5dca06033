"""Detector parameters and their defaults: the one place they are set (settings and benchmarks read them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.terms import TERMS_PER_HEADLINE

SECONDS_PER_DAY = 86_400
MINUTES_PER_YEAR = 365.25 * 24 * 60
MINUTES_PER_MONTH = MINUTES_PER_YEAR / 12
# The stream's budget split by key kind (overall, topics, entities, story terms); within a kind, by share of
# stories (terms: share of stories / terms per headline, so the term keys' weights add up to their quarter).
KIND_SHARE = {"overall": 0.25, "topic": 0.25, "ticker": 0.25, "term": 0.25 / TERMS_PER_HEADLINE}


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Every detector default lives here; ``AlertSettings`` and the benchmarks build from these values."""

    bucket_seconds: int = 300
    windows_minutes: tuple[int, ...] = (60, 360, 1440, 4320)
    baseline_days: int = 28
    false_alerts_per_month: float = 2.0  # per stream, all keys and scales together: sets every p threshold
    exit_factor: float = 3.0  # a window is still "significant" for the episode while p < threshold x this
    calm_minutes: int = 360  # the episode ends after this long without a significant window
    min_count: int = 3  # distinct negative stories in the window
    single_source_factor: int = 2  # an entity key seen from one source only needs this x min_count stories
    prior_weight: float = 2.0  # pseudo reference days at the parent's rate
    cooldown_minutes: int = 1440
    rearm_days: int = 7  # a still-running episode may alert again after this long
    min_history_days: int = 7  # no alert until the stream has this much history (warm-up)
    weekday_aware: bool = True
    term_keys: bool = True  # story terms (``term:<word>``) are keys too, with a quarter of the budget

    def __post_init__(self) -> None:
        if SECONDS_PER_DAY % self.bucket_seconds:
            raise ValueError("bucket_seconds must divide a day")
        if self.false_alerts_per_month <= 0 or self.exit_factor < 1:
            raise ValueError("false_alerts_per_month must be > 0 and exit_factor >= 1")
        if not self.windows_minutes or min(self.windows_minutes) * 60 < self.bucket_seconds:
            raise ValueError("every window must span at least one bucket")
        if list(self.windows_minutes) != sorted(set(self.windows_minutes)):
            raise ValueError("windows_minutes must be distinct and ascending")

    @property
    def buckets_per_day(self) -> int:
        return SECONDS_PER_DAY // self.bucket_seconds

    def window_buckets(self) -> tuple[int, ...]:
        return tuple(max(1, math.ceil(m * 60 / self.bucket_seconds)) for m in self.windows_minutes)

    def p_threshold(self, minutes: int, weight: float | np.ndarray = 1.0) -> np.ndarray:
        """The p-value a window of ``minutes`` must beat for a key holding ``weight`` of the stream's budget.

        Weighted Bonferroni over the stream: a window of length w has ``month / w`` disjoint chances a month,
        the scales split the budget equally, and each key gets its kind's share (``KIND_SHARE``) times its
        share of that kind's stories, so the whole stream, not each key, spends ``false_alerts_per_month``.
        """
        per_test = self.false_alerts_per_month * minutes / MINUTES_PER_MONTH / len(self.windows_minutes)
        return np.minimum(0.5, per_test * np.asarray(weight, dtype=float))

    def lookback_buckets(self) -> int:
        """History one decision reads: the longest window, its non-overlap gap and the baseline days."""
        w = max(self.window_buckets())
        return w + (math.ceil(w / self.buckets_per_day) + self.baseline_days + 1) * self.buckets_per_day

    def history_buckets(self) -> int:
        """History the live scheduler loads: one decision's lookback plus the longest episode memory."""
        return self.lookback_buckets() + self.rearm_days * self.buckets_per_day


DEFAULTS = DetectorParams()
