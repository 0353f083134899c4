"""Reporting periods: parsing months and years, spans, the current period, the pro-rata limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.periods import (
    PeriodError,
    current,
    name,
    parse_kind,
    parse_period,
    period_limit_kg,
    periods,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_months_and_years_parse_to_their_first_instant_in_utc() -> None:
    assert parse_period("month", "2026-02") == utc(2026, 2, 1)
    assert parse_period("year", "2024") == utc(2024, 1, 1)
    assert parse_kind("year") == "year"


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("month", "2026-13"),
        ("month", "2026-00"),
        ("month", "2026-1"),
        ("month", "2026"),
        ("month", " 2026-01"),
        ("month", "2026-01\n"),
        ("month", "٢٠٢٦-٠١"),
        ("year", "2026-01"),
        ("year", "1969"),
        ("year", "9999"),
        ("year", "+202"),
    ],
)
def test_anything_else_is_not_a_period(kind: str, text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(kind, text)  # type: ignore[arg-type]


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(PeriodError, match="month or year"):
        parse_kind("week")


def test_spans_run_from_first_to_last_inclusive_across_a_year_end() -> None:
    spans = periods("month", utc(2025, 11, 1), utc(2026, 2, 1))
    assert spans == [
        (utc(2025, 11, 1), utc(2025, 12, 1)),
        (utc(2025, 12, 1), utc(2026, 1, 1)),
        (utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 2, 1), utc(2026, 3, 1)),
    ]
    assert periods("year", utc(2024, 1, 1), utc(2024, 1, 1)) == [(utc(2024, 1, 1), utc(2025, 1, 1))]


def test_at_most_36_periods_and_never_backwards() -> None:
    assert len(periods("month", utc(2024, 1, 1), utc(2026, 12, 1))) == 36
    with pytest.raises(PeriodError, match="at most 36"):
        periods("month", utc(2024, 1, 1), utc(2027, 1, 1))
    with pytest.raises(PeriodError, match="at most 36"):
        periods("year", utc(1990, 1, 1), utc(2026, 1, 1))
    with pytest.raises(PeriodError, match="before from"):
        periods("month", utc(2026, 2, 1), utc(2026, 1, 1))


def test_the_current_period_and_names() -> None:
    now = datetime(2026, 11, 27, 18, 5, tzinfo=UTC)
    assert current("month", now) == utc(2026, 11, 1)
    assert current("year", now) == utc(2026, 1, 1)
    assert name("month", utc(2026, 3, 1)) == "2026-03"
    assert name("year", utc(2026, 1, 1)) == "2026"


def test_a_months_limit_is_its_share_of_the_year_by_days() -> None:
    assert period_limit_kg(36_600.0, "month", utc(2024, 2, 1)) == 2900.0  # 29 of 366 days
    assert period_limit_kg(36_500.0, "month", utc(2026, 2, 1)) == 2800.0  # 28 of 365
    assert period_limit_kg(36_500.0, "month", utc(2026, 1, 1)) == 3100.0
    assert period_limit_kg(12_345.6, "year", utc(2024, 1, 1)) == 12_345.6
