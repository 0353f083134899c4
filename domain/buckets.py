"""Hour bucketing: which UTC hour a measurement window counts in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime


def hour_of(ts: datetime) -> datetime:
    """The UTC hour that contains ts; buckets never depend on the reader's time zone."""
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hours_of(stamps: Iterable[datetime]) -> list[datetime]:
    """The distinct UTC hours touched by stamps, ascending."""
    return sorted({hour_of(ts) for ts in stamps})
