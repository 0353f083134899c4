"""A site's reporting-period figures: the report shapes, measurement windows, gaps, closing."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec

from domain.co2e import Gwp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_GAPS = 500  # gaps listed per period; more set gaps_truncated


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the report shapes (also the response bodies)."""


class PeakHour(Report, frozen=True):
    hour: datetime
    total_kg: float


class Gap(Report, frozen=True):
    """A run of missing windows: start of the first, end of the last."""

    start: datetime
    end: datetime
    missing_windows: int


class Completeness(Report, frozen=True):
    """Windows with a reading against windows since the site's first reading (up to now).
    ratio and coverage are null when no window is expected."""

    interval_s: int
    windows_expected: int
    windows_received: int
    ratio: float | None
    coverage_start: datetime | None
    coverage_end: datetime | None


class PeriodReport(Report, frozen=True):
    period_start: datetime
    period_end: datetime  # exclusive
    closed: bool
    total_kg: float
    t_co2e: float
    limit_kg: float
    percent_of_limit: float
    peak_hour: PeakHour | None
    readings: int
    completeness: Completeness
    gaps: list[Gap]
    gaps_truncated: bool
    restatements: int
    last_restated_at: datetime | None


class SiteReports(Report, frozen=True):
    site_id: int
    period: str
    gwp: Gwp
    min_gap_h: float
    generated_at: datetime
    reports: list[PeriodReport]
    # More periods were asked for than one answer holds (36); these are the first ones.
    truncated: bool = False


class Coverage(NamedTuple):
    """The part of a period windows are expected in; windows first..end-1 (indexes)."""

    start: datetime
    end: datetime
    first: int
    end_window: int


def window_of(ts: datetime, interval_s: int) -> int:
    """Index of the window containing ts: floor(epoch seconds / interval)."""
    return (ts - EPOCH) // timedelta(seconds=interval_s)


def window_start(index: int, interval_s: int) -> datetime:
    return EPOCH + timedelta(seconds=index * interval_s)


def _first_window_from(ts: datetime, interval_s: int) -> int:
    """Index of the first window starting at or after ts."""
    return -((EPOCH - ts) // timedelta(seconds=interval_s))


def coverage(
    start: datetime, end: datetime, first_reading: datetime | None, now: datetime, interval_s: int
) -> Coverage | None:
    """From the window of the site's first reading (or the period start) to the last window
    boundary before now (or the period end); a window counts in the period it starts in.
    None when no window starts in that span (no reading yet, or a future period)."""
    if first_reading is None:
        return None
    lo = max(start, window_start(window_of(first_reading, interval_s), interval_s))
    hi = min(end, window_start(window_of(now, interval_s), interval_s))
    first, end_window = _first_window_from(lo, interval_s), _first_window_from(hi, interval_s)
    if end_window <= first:
        return None
    return Coverage(lo, hi, first, end_window)


def min_gap_windows(min_gap_h: float, interval_s: int) -> int:
    """Fewest missing windows that last min_gap_h hours (at least one)."""
    # Rounded first so 0.1 h of 360 s windows is 1 window, not 2 (float noise).
    return max(1, math.ceil(round(min_gap_h * 3600 / interval_s, 9)))


def gap(first_missing: int, missing: int, interval_s: int) -> Gap:
    return Gap(
        start=window_start(first_missing, interval_s),
        end=window_start(first_missing + missing, interval_s),
        missing_windows=missing,
    )


def is_closed(end: datetime, grace_h: float, now: datetime) -> bool:
    """A period is closed once its grace period after the end has passed."""
    return end + timedelta(hours=grace_h) <= now


def percent(total_kg: float, limit_kg: float) -> float:
    """100 * total / limit to 3 decimals; saturates instead of overflowing (or dividing by a
    month's share of a tiny annual limit that underflowed to 0)."""
    if total_kg == 0:
        return 0.0
    if limit_kg == 0 or total_kg / limit_kg > sys.float_info.max / 100:
        return sys.float_info.max
    return round(100.0 * total_kg / limit_kg, 3)


def ratio(received: int, expected: int) -> float | None:
    return None if expected == 0 else min(1.0, received / expected)
