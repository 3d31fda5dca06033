"""The pure detector: sparse and dense streams, weekly cycle, hysteresis, cooldown, no repeats, causality."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.alerts.detector import (
    CountSeries,
    DetectorParams,
    KeyState,
    poisson_tail,
    scan,
    score_series,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
HOUR = 12  # 5-minute buckets per hour
DAY = 24 * HOUR
PARAMS = DetectorParams(
    bucket_seconds=300,
    window_buckets=HOUR,
    baseline_days=14,
    min_count=5,
    share_floor=0.35,
    z_enter=4.0,
    z_exit=1.0,
    surprise_min=0.0,
    peak_lookback_buckets=0,
    cooldown_buckets=2 * HOUR,
)


def poisson_stream(
    days: int, per_bucket_total: float, negative_share: float, seed: int = 1, weekend_factor: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = days * DAY
    weekday = (np.arange(n) // DAY) % 7  # START is a Monday
    rate = np.where(weekday >= 5, per_bucket_total * weekend_factor, per_bucket_total)
    total = rng.poisson(rate)
    negative = rng.binomial(total, negative_share)
    return negative, total


def series(negative: np.ndarray, total: np.ndarray | None) -> CountSeries:
    return CountSeries(START, 300, np.asarray(negative), None if total is None else np.asarray(total))


def inject(negative: np.ndarray, total: np.ndarray, at: int, length: int, extra: int) -> None:
    """Add ``extra`` negative items per bucket for ``length`` buckets from ``at``."""
    negative[at : at + length] += extra
    total[at : at + length] += extra


def test_dense_stream_fires_once_on_a_surge_and_explains_it_in_numbers() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=200, negative_share=0.2)
    at = 20 * DAY + 10 * HOUR
    inject(neg, tot, at, HOUR, 150)
    spikes, _ = scan(series(neg, tot), PARAMS)
    assert len(spikes) == 1
    s = spikes[0]
    assert at <= s.index < at + HOUR  # fires during the surge, not before it
    assert s.count > s.baseline * 1.3 and s.z >= PARAMS.z_enter and s.p_value < 1e-6
    assert s.share is not None and s.share >= PARAMS.share_floor and s.total is not None
    text = s.explanation()
    assert str(s.count) in text and "z =" in text and "negative" in text
    assert s.window_end - s.window_start == timedelta(hours=1)


def test_dense_stream_without_a_surge_stays_quiet_for_three_weeks() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=200, negative_share=0.4, seed=7)
    spikes, _ = scan(series(neg, tot), PARAMS)
    assert spikes == []


def test_sparse_stream_a_few_items_per_hour() -> None:
    # ~3 items per hour, 30 % negative: almost every 5-minute bucket is empty.
    neg, tot = poisson_stream(21, per_bucket_total=3 / HOUR, negative_share=0.3, seed=3)
    assert (tot == 0).mean() > 0.7
    quiet, _ = scan(series(neg, tot), PARAMS)
    assert quiet == []
    at = 20 * DAY + 14 * HOUR
    inject(neg, tot, at, 6, 2)  # 12 negative headlines in half an hour
    spikes, _ = scan(series(neg, tot), PARAMS)
    assert len(spikes) == 1 and at <= spikes[0].index < at + 6


def test_min_count_keeps_a_single_item_on_a_silent_key_from_alerting() -> None:
    neg = np.zeros(15 * DAY, dtype=int)
    tot = np.zeros(15 * DAY, dtype=int)
    neg[-10:-8] = 1
    tot[-10:-8] = 1  # 2 negatives where 0 is usual: z is large, the count is not
    assert scan(series(neg, tot), PARAMS)[0] == []
    neg[-8:-4] += 1
    tot[-8:-4] += 1  # 6 within the hour: now it is news
    assert len(scan(series(neg, tot), PARAMS)[0]) == 1


def test_share_floor_ignores_a_volume_surge_that_is_not_negative() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=100, negative_share=0.1, seed=5)
    at = 20 * DAY + 9 * HOUR
    tot[at : at + HOUR] += 300  # a big neutral/positive news day
    neg[at : at + HOUR] += 30  # negatives up a lot too, but only ~17 % of the window
    assert scan(series(neg, tot), PARAMS)[0] == []
    assert scan(series(neg, tot), replace(PARAMS, share_floor=0.0))[0] != []


def test_weekly_cycle_monday_morning_is_not_a_spike_after_a_quiet_weekend() -> None:
    # Weekends run at 15 % of weekday volume. A baseline that ignored the weekly cycle (last 24 h) would
    # see Monday as a 6x surge; the same-kind-of-day baseline does not.
    neg, tot = poisson_stream(29, per_bucket_total=60, negative_share=0.3, seed=11, weekend_factor=0.15)
    assert scan(series(neg, tot), PARAMS)[0] == []
    no_weekly = replace(PARAMS, weekday_aware=False)
    scores = score_series(series(neg, tot), no_weekly)
    monday = 28 * DAY + 10 * HOUR  # day 28 is a Monday
    assert scores.baseline[monday] < score_series(series(neg, tot), PARAMS).baseline[monday]
    # ... and a genuine weekend spike is still caught against the weekend baseline.
    saturday = 26 * DAY + 12 * HOUR
    inject(neg, tot, saturday, HOUR, 8)
    spikes, _ = scan(series(neg, tot), PARAMS)
    assert [saturday <= s.index < saturday + HOUR for s in spikes] == [True]


def test_hysteresis_one_alert_for_a_long_spike_then_cooldown_then_a_new_one() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.2, seed=2)
    first = 19 * DAY + 8 * HOUR
    inject(neg, tot, first, 6 * HOUR, 40)  # six hours of sustained surge, longer than the cooldown
    spikes, state = scan(series(neg, tot), PARAMS)
    assert len(spikes) == 1 and state.in_spike is False
    second = first + 12 * HOUR  # after the first spike ended and the cooldown passed
    inject(neg, tot, second, HOUR, 40)
    spikes, _ = scan(series(neg, tot), PARAMS)
    assert len(spikes) == 2 and spikes[1].index >= second


def test_cooldown_suppresses_a_second_surge_soon_after_the_first() -> None:
    params = replace(PARAMS, window_buckets=3)  # 15-minute window: the key leaves each burst quickly
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.3, seed=4)
    first = 19 * DAY + 8 * HOUR
    inject(neg, tot, first, 3, 60)
    inject(neg, tot, first + HOUR, 3, 60)  # a second burst 1 h later, inside the 2 h cooldown
    scores = score_series(series(neg, tot), params)
    assert scores.z[first + 6 : first + HOUR].min() < params.z_exit  # the first spike did end
    spikes, _ = scan(series(neg, tot), params)
    assert [s.index for s in spikes] == [first]
    shorter = replace(params, cooldown_buckets=HOUR // 2)
    assert [s.index for s in scan(series(neg, tot), shorter)[0]] == [first, first + HOUR]


def test_resuming_from_the_state_never_repeats_an_alert_and_matches_one_pass() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.2, seed=6)
    for at in (15 * DAY, 17 * DAY + 5 * HOUR, 20 * DAY):
        inject(neg, tot, at, 2 * HOUR, 30)
    whole, _ = scan(series(neg, tot), PARAMS)
    assert len(whole) == 3
    # Evaluate bucket by bucket as a live scheduler would (history grows, state carried over).
    state, fired = KeyState(), []
    for end in range(14 * DAY, 21 * DAY, 7):  # runs every 35 minutes, uneven against the window
        prefix = series(neg[:end], tot[:end])
        begin = max(0, end - 7)
        got, state = scan(prefix, PARAMS, begin, state)
        fired.extend(s.index for s in got)
    assert fired == [s.index for s in whole]


def test_decisions_are_causal_future_data_does_not_change_the_past() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.2, seed=8)
    inject(neg, tot, 18 * DAY, HOUR, 30)
    early, _ = scan(series(neg[: 19 * DAY], tot[: 19 * DAY]), PARAMS)
    inject(neg, tot, 20 * DAY, 6 * HOUR, 200)  # a huge later event
    full, _ = scan(series(neg, tot), PARAMS)
    assert [s.index for s in early] == [s.index for s in full if s.index < 19 * DAY]


def test_surprise_requires_a_spike_to_stand_out_from_the_keys_own_recent_peaks() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.3, seed=9)
    for day in range(14, 21):  # a recurring, same-sized burst every day at a different hour
        inject(neg, tot, day * DAY + (day % 5) * 3 * HOUR, 3, 25)
    plain, _ = scan(series(neg, tot), PARAMS)
    with_memory = replace(PARAMS, surprise_min=0.8, peak_lookback_buckets=3 * DAY, peak_gap_buckets=HOUR)
    damped, _ = scan(series(neg, tot), with_memory)
    assert len(plain) >= 6
    assert len(damped) < len(plain)


def test_severity_grows_with_z() -> None:
    neg, tot = poisson_stream(21, per_bucket_total=50, negative_share=0.3, seed=10)
    inject(neg, tot, 20 * DAY, HOUR, 6)
    small = scan(series(neg, tot), PARAMS)[0]
    inject(neg, tot, 20 * DAY, HOUR, 200)
    big = scan(series(neg, tot), PARAMS)[0]
    assert small and big
    rank = {"warning": 0, "high": 1, "critical": 2}
    assert small[0].severity == "warning" and rank[big[0].severity] > rank[small[0].severity]


def test_volume_only_series_for_benchmarks() -> None:
    rng = np.random.default_rng(0)
    vol = rng.poisson(20, 22 * DAY)
    vol[21 * DAY : 21 * DAY + 3] += 400
    spikes, _ = scan(series(vol, None), replace(PARAMS, window_buckets=3))
    assert len(spikes) == 1 and spikes[0].share is None


@pytest.mark.parametrize(
    ("k", "mean", "expected"), [(0, 3.0, 1.0), (1, 2.0, 1 - np.exp(-2.0)), (5, 1.0, 0.0036598468)]
)
def test_poisson_tail(k: int, mean: float, expected: float) -> None:
    assert poisson_tail(k, mean) == pytest.approx(expected, rel=1e-6)


def test_poisson_tail_is_tiny_far_out_and_monotone() -> None:
    values = [poisson_tail(k, 10.0) for k in range(0, 60, 5)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert 0 < poisson_tail(60, 10.0) < 1e-20
    assert poisson_tail(2000, 1000.0) < 1e-100
