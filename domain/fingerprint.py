"""Request fingerprints: equal for any two bodies that mean the same batch."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC

import msgspec

from domain.readings import Reading

_encode = msgspec.json.Encoder().encode


def batch_fingerprint(device_id: str, readings: Sequence[Reading]) -> bytes:
    """sha256 of the canonical batch: readings in UTC, ordered by window, floats as JSON.

    A retry that re-orders readings or spells an offset differently is the same request;
    any change of value or window is a different one.
    """
    canonical = sorted((r.ts.astimezone(UTC), r.methane_kg) for r in readings)
    return hashlib.sha256(_encode([device_id, canonical])).digest()
