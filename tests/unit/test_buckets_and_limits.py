"""UTC hour and year bucketing, limit status at its boundaries, duplicate/conflict split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from domain.buckets import hour_of, hours_of, year_of
from domain.limits import LimitStatus, limit_status, percent_of_limit
from domain.receipts import Conflict, classify

PLUS5 = timezone(timedelta(hours=5))


def test_hour_of_truncates_to_the_utc_hour() -> None:
    ts = datetime(2026, 3, 4, 5, 59, 59, 999_999, tzinfo=UTC)
    assert hour_of(ts) == datetime(2026, 3, 4, 5, 0, tzinfo=UTC)


def test_hour_of_normalises_an_offset_to_utc() -> None:
    hour = hour_of(datetime(2026, 3, 4, 5, 30, tzinfo=PLUS5))
    assert hour == datetime(2026, 3, 4, 0, 0, tzinfo=UTC)
    assert hour.utcoffset() == timedelta(0)


def test_last_half_hour_of_the_year_counts_in_that_year_and_hour() -> None:
    ts = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert year_of(ts) == 2025
    assert hour_of(ts) == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def test_year_of_uses_the_utc_year_not_the_local_one() -> None:
    # New Year's morning at +05:00 is still the old year in UTC.
    assert year_of(datetime(2026, 1, 1, 4, 30, tzinfo=PLUS5)) == 2025
    assert year_of(datetime(2026, 1, 1, 5, 0, tzinfo=PLUS5)) == 2026


def test_hours_of_is_distinct_and_ascending() -> None:
    stamps = [
        datetime(2026, 1, 5, 2, 45, tzinfo=UTC),
        datetime(2026, 1, 5, 0, 15, tzinfo=UTC),
        datetime(2026, 1, 5, 5, 10, tzinfo=PLUS5),  # 00:10Z: same hour as 00:15Z
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
    ]
    assert hours_of(stamps) == [
        datetime(2026, 1, 5, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
    ]


def test_hours_of_nothing_is_empty() -> None:
    assert hours_of([]) == []


def test_just_below_80_percent_is_ok() -> None:
    assert limit_status(79.999, 100.0) is LimitStatus.OK


def test_exactly_80_percent_is_a_warning() -> None:
    assert limit_status(80.0, 100.0) is LimitStatus.WARNING


def test_just_below_100_percent_is_still_a_warning() -> None:
    assert limit_status(99.99, 100.0) is LimitStatus.WARNING


def test_exactly_100_percent_is_exceeded() -> None:
    assert limit_status(100.0, 100.0) is LimitStatus.EXCEEDED
    assert limit_status(250.0, 100.0) is LimitStatus.EXCEEDED


def test_nothing_emitted_is_ok() -> None:
    assert limit_status(0.0, 100.0) is LimitStatus.OK


def test_boundaries_hold_for_limits_that_are_not_round() -> None:
    assert limit_status(4 * 7.3, 5 * 7.3) is LimitStatus.WARNING
    assert limit_status(123.456, 123.456) is LimitStatus.EXCEEDED


def test_limit_status_values_are_the_api_strings() -> None:
    assert [s.value for s in LimitStatus] == ["ok", "warning", "exceeded"]


def test_percent_of_limit_is_year_kg_over_limit_in_percent() -> None:
    assert percent_of_limit(0.0, 500.0) == 0.0
    assert percent_of_limit(250.0, 500.0) == 50.0
    assert percent_of_limit(750.0, 500.0) == 150.0


def test_classify_nothing_is_no_duplicates_and_no_conflicts() -> None:
    assert classify([]) == (0, [])


def test_classify_splits_equal_values_from_different_ones() -> None:
    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    t1 = datetime(2026, 1, 5, 0, 15, tzinfo=UTC)
    t2 = datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
    duplicates, conflicts = classify([(t0, 1.5, 1.5), (t1, 9.75, 2.0), (t2, 0.0, 0.0)])
    assert duplicates == 2
    assert conflicts == [Conflict(ts=t1, stored_methane_kg=2.0, received_methane_kg=9.75)]


def test_classify_compares_floats_exactly() -> None:
    t0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    duplicates, conflicts = classify([(t0, 0.1 + 0.2, 0.3)])
    assert duplicates == 0
    assert conflicts == [Conflict(ts=t0, stored_methane_kg=0.3, received_methane_kg=0.1 + 0.2)]


def test_co2e_uses_the_versioned_gwp100_factors() -> None:
    from domain.co2e import GWP100, gwp, t_co2e

    assert GWP100 == {"AR6-fossil": 29.8, "AR6-non-fossil": 27.0, "AR5": 28.0, "AR4": 25.0}
    assert t_co2e(1000.0, gwp("AR6-fossil").factor) == 29.8
    assert t_co2e(1000.0, gwp("AR4").factor) == 25.0
    assert t_co2e(1.5, 27.0) == 0.0405
