"""Request fingerprints: equal for any two bodies that mean the same batch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from domain.readings import Reading

_encode = msgspec.json.Encoder().encode


def canonical(readings: Sequence[Reading]) -> list[tuple[datetime, float]]:
    """(window start in UTC, kg) ordered by window: what the batch means, however spelled.
    -0.0 kg is 0.0 kg (adding 0.0 turns the one into the other and changes nothing else)."""
    stamps = [r.ts.astimezone(UTC) for r in readings]
    return sorted(zip(stamps, [r.methane_kg + 0.0 for r in readings], strict=True))


def canonical_fingerprint(device_id: str, batch: list[tuple[datetime, float]]) -> bytes:
    """sha256 of [device_id, batch] as JSON (floats as JSON), batch from canonical()."""
    return hashlib.sha256(_encode([device_id, batch])).digest()
