"""Detector parameters and their defaults: the one place they are set (settings and benchmarks read them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_DAY = 86_400
MINUTES_PER_YEAR = 365.25 * 24 * 60


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Every detector default lives here; ``AlertSettings`` and the benchmarks build from these values."""

    bucket_seconds: int = 300
    windows_minutes: tuple[int, ...] = (60, 360, 1440, 4320)
    baseline_days: int = 28
    false_alarms_per_year: float = 0.01  # per key and scale, under the fitted law: sets every p threshold
    exit_factor: float = 100.0  # the episode ends when p rises above threshold x exit_factor on all scales
    min_count: int = 3  # distinct negative stories in the window
    single_source_factor: int = 2  # an entity key seen from one source only needs this x min_count stories
    prior_weight: float = 2.0  # pseudo reference days at the parent's rate
    cooldown_minutes: int = 1440
    rearm_days: int = 7  # a still-running episode may alert again after this long
    min_history_days: int = 7  # no alert until the stream has this much history (warm-up)
    weekday_aware: bool = True

    def __post_init__(self) -> None:
        if SECONDS_PER_DAY % self.bucket_seconds:
            raise ValueError("bucket_seconds must divide a day")
        if not self.windows_minutes or min(self.windows_minutes) * 60 < self.bucket_seconds:
            raise ValueError("every window must span at least one bucket")
        if list(self.windows_minutes) != sorted(set(self.windows_minutes)):
            raise ValueError("windows_minutes must be distinct and ascending")

    @property
    def buckets_per_day(self) -> int:
        return SECONDS_PER_DAY // self.bucket_seconds

    def window_buckets(self) -> tuple[int, ...]:
        return tuple(max(1, math.ceil(m * 60 / self.bucket_seconds)) for m in self.windows_minutes)

    def p_threshold(self, minutes: int) -> float:
        return min(0.5, self.false_alarms_per_year * minutes / MINUTES_PER_YEAR)

    def lookback_buckets(self) -> int:
        """History one decision reads: the longest window, its non-overlap gap and the baseline days."""
        w = max(self.window_buckets())
        return w + (math.ceil(w / self.buckets_per_day) + self.baseline_days + 1) * self.buckets_per_day

    def history_buckets(self) -> int:
        """History the live scheduler loads: one decision's lookback plus the longest episode memory."""
        return self.lookback_buckets() + self.rearm_days * self.buckets_per_day


DEFAULTS = DetectorParams()
