"""Alert rules: which limit thresholds a year total has crossed, and what counts as a leak."""

from __future__ import annotations

from domain.limits import EXCEEDED_AT, WARNING_AT, percent_of_limit

THRESHOLDS = (WARNING_AT, EXCEEDED_AT)


def crossed_thresholds(year_kg: float, limit_kg: float) -> list[float]:
    """The thresholds (percent of the annual limit) at or above which year_kg stands."""
    percent = percent_of_limit(year_kg, limit_kg)
    return [t for t in THRESHOLDS if percent >= t]
