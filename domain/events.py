"""Outbox events as the workers read them, and how long a failing event waits to retry."""

from __future__ import annotations

from datetime import datetime

import msgspec

# The one place the two names of a stored batch meet: the outbox (and the ops API that lists
# it) has called it "measurements.accepted" since the first release; subscribers see
# "batch.accepted". The drain's mark_processed_and_queue_deliveries maps one to the other.
MEASUREMENTS_ACCEPTED = "measurements.accepted"
BATCH_ACCEPTED = "batch.accepted"

# Event types delivered to webhook subscribers.
THRESHOLD_CROSSED = "site.threshold_crossed"
LEAK_DETECTED = "site.leak_detected"
SITE_STALE = "site.stale"
REPORT_RESTATED = "report.restated"
EVENT_TYPES = (BATCH_ACCEPTED, THRESHOLD_CROSSED, LEAK_DETECTED, SITE_STALE, REPORT_RESTATED)
# Outbox events that only need delivering (no aggregates to apply).
NOTICE_TYPES = frozenset(EVENT_TYPES) - {BATCH_ACCEPTED}
ALERT_EVENT_TYPE = {"threshold": THRESHOLD_CROSSED, "leak": LEAK_DETECTED, "stale": SITE_STALE}


class MeasurementsAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """Payload of a batch that stored new readings: the UTC hours they fall in."""

    batch_id: str
    request_id: str = ""
    device_id: str = ""
    accepted: int
    first_ts: datetime
    last_ts: datetime
    hours: list[datetime]


def parse_accepted(payload: object) -> MeasurementsAccepted:
    """The typed payload (decoded, or JSON text from a connection without a jsonb codec).

    Raises msgspec.ValidationError or DecodeError for a malformed (poison) payload.
    """
    if isinstance(payload, str | bytes):
        return msgspec.json.decode(payload, type=MeasurementsAccepted, strict=False)
    return msgspec.convert(payload, MeasurementsAccepted, strict=False)


def backoff_s(attempts: int, *, base_s: float, cap_s: float, jitter: float) -> float:
    """Delay before retry number `attempts` (1-based): exponential, capped, jittered.

    jitter in [0, 1) picks a point in [delay/2, delay): events that failed together spread
    out instead of failing together again, and no retry comes sooner than half the delay.
    """
    delay: float = min(cap_s, base_s * 2 ** (attempts - 1))
    return delay * (0.5 + jitter / 2)
