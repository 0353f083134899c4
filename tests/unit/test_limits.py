"""Limit status at its 80 % and 100 % boundaries, and the percent of the limit."""

from __future__ import annotations

from domain.limits import LimitStatus, limit_status, percent_of_limit


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
