"""Where a site stands against its annual emission limit."""

from __future__ import annotations

import enum

WARNING_AT = 80.0
EXCEEDED_AT = 100.0


class LimitStatus(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


def percent_of_limit(year_kg: float, limit_kg: float) -> float:
    """Year-to-date emissions as a percentage of the annual limit (limit_kg > 0)."""
    return year_kg / limit_kg * 100.0


def limit_status(year_kg: float, limit_kg: float) -> LimitStatus:
    """ok below 80 %, warning from 80 %, exceeded from 100 % of the annual limit."""
    percent = percent_of_limit(year_kg, limit_kg)
    if percent >= EXCEEDED_AT:
        return LimitStatus.EXCEEDED
    if percent >= WARNING_AT:
        return LimitStatus.WARNING
    return LimitStatus.OK
