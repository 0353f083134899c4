"""Reporting periods: UTC calendar months and years, named "YYYY-MM" and "YYYY"."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Literal

PeriodKind = Literal["month", "year"]
KINDS: tuple[PeriodKind, ...] = ("month", "year")
MAX_PERIODS = 36
MIN_YEAR, MAX_YEAR = 1970, 9998  # the end of the last period must still be a datetime
_NAME = re.compile(r"([0-9]{4})(?:-([0-9]{2}))?")
# The same names as a JSON Schema pattern, years MIN_YEAR..MAX_YEAR and months 01..12 spelled
# out, so a generated (or hand-written) name that matches it is one the API takes.
NAME_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])(-(0[1-9]|1[0-2]))?$"
)


class PeriodError(ValueError):
    """Not a reporting period."""


def parse_kind(text: str) -> PeriodKind:
    for kind in KINDS:
        if text == kind:
            return kind
    raise PeriodError("must be month or year")


def parse_period(kind: PeriodKind, text: str, *, last: bool = False) -> datetime:
    """The start of the period named text: "YYYY-MM" for a month, "YYYY" for a year.

    The other kind's name is taken in the obvious way rather than refused (the query schema
    cannot tie a name's shape to `period`): a year in a month report is its first month, or
    its last with `last`; a month in a year report is the year that contains it.
    """
    match = _NAME.fullmatch(text)
    if match is None:
        raise PeriodError("must be YYYY-MM" if kind == "month" else "must be YYYY")
    year = int(match.group(1))
    if match.group(2) is None:
        month = 12 if last and kind == "month" else 1
    else:
        month = int(match.group(2)) if kind == "month" else 1
        if not 1 <= int(match.group(2)) <= 12:
            raise PeriodError("the month must be from 01 to 12")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"the year must be from {MIN_YEAR} to {MAX_YEAR}")
    return datetime(year, month, 1, tzinfo=UTC)


def current(kind: PeriodKind, now: datetime) -> datetime:
    """The start of the UTC period that contains now."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month if kind == "month" else 1, 1, tzinfo=UTC)


def following(kind: PeriodKind, start: datetime) -> datetime:
    """The start of the period after the one starting at start (its exclusive end)."""
    if kind == "year":
        return start.replace(year=start.year + 1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def name(kind: PeriodKind, start: datetime) -> str:
    return f"{start.year:04d}-{start.month:02d}" if kind == "month" else f"{start.year:04d}"


def periods(kind: PeriodKind, first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """(start, exclusive end) of every period from first to last inclusive, ascending: none
    when last is before first, and only the first MAX_PERIODS of a longer run (the caller
    says it was cut: its last span starts before last)."""
    if last < first:
        return []
    count = (last.year - first.year) * (12 if kind == "month" else 1)
    count += last.month - first.month + 1 if kind == "month" else 1
    spans = []
    start = first
    for _ in range(min(count, MAX_PERIODS)):
        end = following(kind, start)
        spans.append((start, end))
        start = end
    return spans


def days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def period_limit_kg(annual_limit_kg: float, kind: PeriodKind, start: datetime) -> float:
    """A year's limit is the annual limit; a month's is its share by days of that year."""
    if kind == "year":
        return annual_limit_kg
    days = calendar.monthrange(start.year, start.month)[1]
    return annual_limit_kg * days / days_in_year(start.year)
