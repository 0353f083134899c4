"""Report arithmetic: windows, coverage, gaps, closing, and ratios that never fail."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from domain.reports import (
    Coverage,
    Gap,
    coverage,
    gap,
    is_closed,
    min_gap_windows,
    percent,
    ratio,
    window_of,
    window_start,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_windows_are_floor_of_epoch_seconds_over_the_interval() -> None:
    assert window_of(utc(1970, 1, 1, 0, 14, 59), 900) == 0
    assert window_of(utc(1970, 1, 1, 0, 15), 900) == 1
    assert window_start(window_of(utc(2026, 1, 5, 10, 7), 900), 900) == utc(2026, 1, 5, 10, 0)
    assert window_of(utc(1969, 12, 31, 23, 59), 900) == -1


def test_coverage_starts_at_the_first_readings_window_and_ends_at_the_last_full_window() -> None:
    jan, feb = utc(2026, 1, 1), utc(2026, 2, 1)
    now = utc(2026, 1, 10, 12, 7)
    first = utc(2026, 1, 3, 6, 20)
    got = coverage(jan, feb, first, now, 900)
    assert got == Coverage(
        utc(2026, 1, 3, 6, 15),
        utc(2026, 1, 10, 12, 0),
        window_of(utc(2026, 1, 3, 6, 15), 900),
        window_of(utc(2026, 1, 10, 12, 0), 900),
    )
    assert got is not None and got.end_window - got.first == 695  # 7 d 5 h 45 min
    # A whole past period once the first reading is older than it.
    whole = coverage(jan, feb, utc(2025, 6, 1), utc(2026, 5, 1), 900)
    assert whole is not None and whole.end_window - whole.first == 31 * 96


def test_no_coverage_without_readings_before_the_first_or_in_the_future() -> None:
    jan, feb = utc(2026, 1, 1), utc(2026, 2, 1)
    assert coverage(jan, feb, None, utc(2026, 5, 1), 900) is None
    assert coverage(jan, feb, utc(2026, 3, 1), utc(2026, 5, 1), 900) is None
    assert coverage(jan, feb, utc(2025, 3, 1), utc(2025, 12, 1), 900) is None
    assert coverage(jan, feb, utc(2025, 3, 1), utc(2026, 1, 1, 0, 14), 900) is None


def test_a_window_that_does_not_divide_the_day_counts_in_the_period_it_starts_in() -> None:
    jan, feb = utc(2026, 1, 1), utc(2026, 2, 1)
    got = coverage(jan, feb, utc(2025, 1, 1), utc(2026, 6, 1), 7000)
    assert got is not None
    assert window_start(got.first, 7000) >= jan
    assert window_start(got.first - 1, 7000) < jan
    assert window_start(got.end_window - 1, 7000) < feb <= window_start(got.end_window, 7000)


def test_min_gap_windows_round_up_but_not_for_float_noise() -> None:
    assert min_gap_windows(1.0, 900) == 4
    assert min_gap_windows(0.1, 360) == 1
    assert min_gap_windows(0.7, 900) == 3  # 2.8 windows: a gap must last at least 0.7 h
    assert min_gap_windows(1e-9, 900) == 1
    assert min_gap_windows(2.0, 86_400) == 1


def test_a_gap_spans_its_missing_windows() -> None:
    start = window_of(utc(2026, 1, 15), 900)
    assert gap(start, 96, 900) == Gap(
        start=utc(2026, 1, 15), end=utc(2026, 1, 16), missing_windows=96
    )


def test_a_period_closes_when_the_grace_period_has_passed() -> None:
    end = utc(2026, 2, 1)
    assert not is_closed(end, 24.0, end + timedelta(hours=23, minutes=59))
    assert is_closed(end, 24.0, end + timedelta(hours=24))
    assert is_closed(end, 0.0, end)


def test_ratio_is_null_when_nothing_is_expected() -> None:
    assert ratio(0, 0) is None
    assert ratio(3, 4) == 0.75


def test_percent_of_limit_saturates_instead_of_failing() -> None:
    assert percent(14.25, 2900.0) == 0.491
    assert percent(0.0, 0.0) == 0.0
    assert percent(1.0, 0.0) == sys.float_info.max
    assert percent(1e300, 1e-300) == sys.float_info.max
