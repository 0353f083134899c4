"""The answer to a batch: what was new, what was already there, what disagreed."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """A window already stored with a different value; the stored value was kept."""

    ts: datetime
    stored_methane_kg: float
    received_methane_kg: float


class IngestReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """Counts for one batch: received = accepted + duplicates + len(conflicts)."""

    batch_id: UUID
    site_id: int
    device_id: str
    received: int
    accepted: int
    duplicates: int
    conflicts: list[Conflict]


def classify(
    others: list[tuple[datetime, float, float]],
) -> tuple[int, list[Conflict]]:
    """Split (ts, received, stored) of readings that were not new into duplicates and conflicts.

    Exact float comparison is right: both sides are the same IEEE double after a round trip.
    """
    conflicts = [
        Conflict(ts=ts, stored_methane_kg=stored, received_methane_kg=received)
        for ts, received, stored in others
        if stored != received
    ]
    return len(others) - len(conflicts), conflicts
