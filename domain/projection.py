"""Year-end projection of a site's emissions at its year-to-date average pace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    year_end_kg: float
    exceedance_at: datetime | None


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """[1 January, next 1 January) of a UTC calendar year: the period limits are counted in."""
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def project_year(year_kg: float, limit_kg: float, now: datetime) -> Projection:
    """year_end_kg = year_kg / f, f the elapsed fraction of the UTC year at `now`. The limit is
    reached at start + elapsed * limit_kg / year_kg; exceedance_at is that instant when it falls
    after `now` and before the year ends, else None (already exceeded, or not this year)."""
    start, end = year_bounds(now.year)
    elapsed = (now - start).total_seconds()
    if year_kg <= 0 or elapsed <= 0:
        return Projection(year_end_kg=max(year_kg, 0.0), exceedance_at=None)
    year_end_kg = year_kg * (end - start).total_seconds() / elapsed
    if year_kg >= limit_kg or year_end_kg < limit_kg:
        return Projection(year_end_kg=year_end_kg, exceedance_at=None)
    reach_s = elapsed * limit_kg / year_kg
    return Projection(
        year_end_kg=year_end_kg, exceedance_at=start + timedelta(seconds=round(reach_s))
    )
