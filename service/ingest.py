"""The ingest use case: one transaction writes readings, idempotency record and outbox event."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import uuid4

import asyncpg
import msgspec

from domain.fingerprint import batch_fingerprint
from domain.readings import Reading
from domain.receipts import IngestReceipt, classify
from service import queries
from service.errors import KeyInFlight, KeyReused, ServiceError, SiteNotFound
from service.sites import MAX_ID

ACCEPTED = 202
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the API sends back: the stored answer, and whether it is a replay."""

    status_code: int
    body: bytes
    replayed: bool
    receipt: IngestReceipt | None = None
    event_id: int | None = None


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def record_batch(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    device_id: str,
    key: str,
    readings: Sequence[Reading],
    request_id: str,
    retention: timedelta,
) -> Outcome:
    """Apply a validated batch exactly once per (site, device, Idempotency-Key).

    The advisory lock makes a concurrent retry of the same key fail fast (KeyInFlight)
    instead of waiting; the lookup after it sees any earlier commit of that key.
    """
    if not 0 < site_id <= MAX_ID:
        raise SiteNotFound(f"site {site_id} does not exist")
    q = queries.load("ingest")
    scope = f"{site_id}/{device_id}"
    fingerprint = batch_fingerprint(device_id, readings)
    async with conn.transaction():
        if not await conn.fetchval(q["try_lock_key"], _lock_id(scope, key)):
            raise KeyInFlight()
        found = await conn.fetchrow(q["find_request"], scope, key, site_id)
        assert found is not None  # the query always returns one row
        if found["fingerprint"] is not None and not found["expired"]:
            if found["fingerprint"] != fingerprint:
                raise KeyReused()
            return Outcome(found["status_code"], found["response_body"], replayed=True)
        if not found["site_exists"]:
            raise SiteNotFound(f"site {site_id} does not exist")
        batch_id = uuid4()
        # Sorted input: concurrent batches lock overlapping windows in one order (no deadlock).
        ordered = sorted(readings, key=lambda r: r.ts)
        row = await conn.fetchrow(
            q["insert_readings"],
            site_id,
            [r.ts for r in ordered],
            [r.methane_kg for r in ordered],
            device_id,
            batch_id,
            request_id,
        )
        assert row is not None  # an aggregate without GROUP BY returns one row
        others = await _stored_values(conn, q["stored_values"], site_id, row)
        duplicates, conflicts = classify(others)
        receipt = IngestReceipt(
            batch_id=batch_id,
            site_id=site_id,
            device_id=device_id,
            received=len(ordered),
            accepted=row["accepted"],
            duplicates=duplicates,
            conflicts=conflicts,
        )
        body = _encode(receipt)
        saved = await conn.execute(
            q["save_request"],
            scope,
            key,
            fingerprint,
            site_id,
            batch_id,
            ACCEPTED,
            body,
            retention,
        )
        if saved != "INSERT 0 1":  # the lock and lookup above make this unreachable
            raise ServiceError("idempotency record was not written")
    return Outcome(ACCEPTED, body, replayed=False, receipt=receipt, event_id=row["event_id"])


async def _stored_values(
    conn: asyncpg.Connection, query: str, site_id: int, row: asyncpg.Record
) -> list[tuple[datetime, float, float]]:
    """(ts, received, stored) for readings that were not new.

    A window another transaction committed while this insert waited on it is invisible to
    the insert statement's snapshot (stored is NULL); a fresh statement reads it.
    """
    others = list(zip(row["other_ts"], row["other_received"], row["other_stored"], strict=True))
    missing = [ts for ts, _, stored in others if stored is None]
    if missing:
        late = {r["ts"]: r["methane_kg"] for r in await conn.fetch(query, site_id, missing)}
        others = [(ts, kg, late[ts] if stored is None else stored) for ts, kg, stored in others]
    return others
