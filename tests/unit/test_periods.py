"""Reporting periods: parsing months and years, spans, the current period, the pro-rata limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.periods import (
    PeriodError,
    parse_kind,
    parse_period,
    periods,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_months_and_years_parse_to_their_first_instant_in_utc() -> None:
    assert parse_period("month", "2026-02") == utc(2026, 2, 1)
    assert parse_period("year", "2024") == utc(2024, 1, 1)
    assert parse_kind("year") == "year"


def test_the_other_kinds_name_is_its_first_or_last_month_or_its_year() -> None:
    assert parse_period("month", "2026") == utc(2026, 1, 1)
    assert parse_period("month", "2026", last=True) == utc(2026, 12, 1)
    assert parse_period("year", "2026-07") == utc(2026, 1, 1)
    assert parse_period("year", "2026-07", last=True) == utc(2026, 1, 1)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("month", "2026-13"),
        ("month", "2026-00"),
        ("month", "2026-1"),
        ("month", " 2026-01"),
        ("month", "2026-01\n"),
        ("month", "٢٠٢٦-٠١"),
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


def test_a_long_run_is_cut_to_its_first_36_periods_and_a_backwards_one_is_empty() -> None:
    assert len(periods("month", utc(2024, 1, 1), utc(2026, 12, 1))) == 36
    cut = periods("month", utc(2024, 1, 1), utc(2027, 1, 1))
    assert (len(cut), cut[-1][0]) == (36, utc(2026, 12, 1))
    assert periods("year", utc(1990, 1, 1), utc(2026, 1, 1))[-1][0] == utc(2025, 1, 1)
    assert periods("month", utc(2026, 2, 1), utc(2026, 1, 1)) == []
