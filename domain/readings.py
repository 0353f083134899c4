"""Ingest rules for a batch of readings: what a device may send, checked before any I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import eq
from typing import Protocol

import msgspec

from domain.errors import FieldError, InvalidBatch


class Reading(Protocol):
    """One measurement window: its start (must be offset-aware) and the kg CH4 emitted in it."""

    @property
    def ts(self) -> datetime: ...
    @property
    def methane_kg(self) -> float: ...


class Window(msgspec.Struct, frozen=True):
    """A plain Reading, for code that builds readings rather than decoding them."""

    ts: datetime
    methane_kg: float


class BatchLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The configurable bounds a batch must respect."""

    max_readings: int = 5000
    max_methane_kg: float = 1e6
    max_future: timedelta = timedelta(minutes=5)
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)


def check_batch(readings: Sequence[Reading], *, limits: BatchLimits, now: datetime) -> None:
    """Raise InvalidBatch listing every broken rule; return None when the batch is acceptable."""
    if 0 < len(readings) <= limits.max_readings and _all_good(readings, limits, now):
        return  # the usual batch: whole-batch checks, no per-reading Python
    errors: list[FieldError] = []
    if not readings:
        errors.append(FieldError("/measurements", "a batch needs at least one reading"))
    if len(readings) > limits.max_readings:
        errors.append(
            FieldError(
                "/measurements",
                f"at most {limits.max_readings} readings per batch, got {len(readings)}",
            )
        )
        raise InvalidBatch(errors)  # don't walk a huge batch only to list more of the same
    latest = now + limits.max_future
    seen: dict[datetime, int] = {}
    for i, reading in enumerate(readings):
        errors.extend(_check_reading(i, reading, limits=limits, latest=latest))
        first = seen.setdefault(reading.ts, i)
        if first != i:
            errors.append(
                FieldError(f"/measurements/{i}/ts", f"repeats the window of /measurements/{first}")
            )
    if errors:
        raise InvalidBatch(errors)


def _all_good(readings: Sequence[Reading], limits: BatchLimits, now: datetime) -> bool:
    """True only if every reading keeps every rule; False sends the batch to the itemised walk.

    sorted, min/max/sum and map run in C: ~5x cheaper than the walk for 500 readings.
    """
    latest = now + limits.max_future
    if latest.utcoffset() is None:
        return False
    kgs = [r.methane_kg for r in readings]
    try:
        # A naive datetime cannot be ordered against an aware one: TypeError.
        stamps = sorted([r.ts for r in readings])
        if stamps[-1] > latest or stamps[0] < limits.earliest:
            return False
    except TypeError:
        return False
    # Sorted, a repeated instant sits next to itself (hashing aware datetimes costs 3x more).
    # A NaN or infinite reading makes the sum non-finite.
    return (
        not any(map(eq, stamps, islice(stamps, 1, None)))
        and math.isfinite(sum(kgs))
        and min(kgs) >= 0
        and max(kgs) <= limits.max_methane_kg
    )


def _check_reading(
    i: int, reading: Reading, *, limits: BatchLimits, latest: datetime
) -> list[FieldError]:
    errors = []
    ts, kg = reading.ts, reading.methane_kg
    if ts.utcoffset() is None:
        errors.append(FieldError(f"/measurements/{i}/ts", "needs an explicit UTC offset"))
    elif ts < limits.earliest:
        errors.append(
            FieldError(f"/measurements/{i}/ts", f"is before {limits.earliest.isoformat()}")
        )
    elif ts > latest:
        errors.append(FieldError(f"/measurements/{i}/ts", "is too far in the future"))
    if not math.isfinite(kg):
        errors.append(FieldError(f"/measurements/{i}/methane_kg", "must be a finite number"))
    elif not 0 <= kg <= limits.max_methane_kg:
        errors.append(
            FieldError(
                f"/measurements/{i}/methane_kg",
                f"must be within [0, {limits.max_methane_kg:g}] kg",
            )
        )
    return errors
