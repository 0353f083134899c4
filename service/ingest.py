"""The ingest use case: one transaction writes readings, idempotency record and outbox event."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec

from domain.fingerprint import canonical, canonical_fingerprint
from domain.readings import Reading
from domain.receipts import IngestReceipt, classify
from service.infra import queries
from service.infra.db import valid_id
from service.infra.errors import (
    InvalidDeviceKey,
    KeyInFlight,
    KeyReused,
    ServiceError,
    SiteNotFound,
)

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


class _Overlap(Exception):
    """The fast path met a window another transaction stored meanwhile; take the careful one."""


async def record_batch(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    device_id: str,
    key: str,
    readings: Sequence[Reading],
    request_id: str,
    retention: timedelta,
    key_id: int | None = None,
) -> Outcome:
    """Apply a validated batch exactly once per (site, device, Idempotency-Key).

    The advisory lock makes a concurrent retry of the same key fail fast (KeyInFlight)
    instead of waiting; the lookup after it sees any earlier commit of that key.

    key_id is the device key the request came with: the transaction refuses it
    (InvalidDeviceKey) unless it is still live, so the caller may have looked it up earlier.

    Most batches are all new: they take a fast path of plain inserts. A batch with a stored
    window takes the careful path (insert what is new, itemise the rest); so does one whose
    fast path met a window a concurrent transaction stored, after rolling everything back.
    """
    if not valid_id(site_id):
        raise SiteNotFound(f"site {site_id} does not exist")
    # Ordered by window: concurrent batches lock overlapping windows in one order (no
    # deadlock). The fingerprint and the statement's arrays share the one sorted list.
    ordered = canonical(readings)
    fingerprint = canonical_fingerprint(device_id, ordered)
    args = (conn, site_id, device_id, key, ordered, fingerprint, request_id, retention, key_id)
    try:
        return await _record(*args, fast=bool(ordered))
    except _Overlap:
        return await _record(*args, fast=False)


def _array_literal(values: list[Any]) -> str:
    """'{...}' for a text-to-array cast; msgspec's JSON strings and numbers are valid elements."""
    return "{" + _encode(values)[1:-1].decode() + "}"


async def _record(
    conn: asyncpg.Connection,
    site_id: int,
    device_id: str,
    key: str,
    ordered: list[tuple[datetime, float]],
    fingerprint: bytes,
    request_id: str,
    retention: timedelta,
    key_id: int | None,
    *,
    fast: bool,
) -> Outcome:
    q = queries.load("ingest")
    scope = f"{site_id}/{device_id}"
    batch_id = uuid4()
    stamps = _array_literal([ts for ts, _ in ordered])
    kgs = _array_literal([kg for _, kg in ordered])
    async with conn.transaction():
        if not await conn.fetchval(q["try_lock_key"], _lock_id(scope, key)):
            raise KeyInFlight()
        if fast:
            # The answer if everything is new; the statement stores it only if so.
            receipt = _receipt(batch_id, site_id, device_id, len(ordered), [])
            body = _encode(receipt)
            try:
                found = await conn.fetchrow(
                    q["record_new_batch"],
                    scope,
                    key,
                    site_id,
                    stamps,
                    kgs,
                    device_id,
                    batch_id,
                    request_id,
                    ordered[0][0],
                    ordered[-1][0],
                    fingerprint,
                    ACCEPTED,
                    body,
                    retention,
                    key_id,
                )
            except asyncpg.UniqueViolationError as exc:
                raise _Overlap() from exc  # leaving the block rolls the transaction back
        else:
            found = await conn.fetchrow(q["find_request"], scope, key, site_id, key_id)
        assert found is not None  # both queries always return one row
        if not found["key_live"]:  # revoked since the caller looked it up
            raise InvalidDeviceKey()
        if found["fingerprint"] is not None and not found["expired"]:
            if found["fingerprint"] != fingerprint:
                raise KeyReused()
            return Outcome(found["status_code"], found["response_body"], replayed=True)
        if not found["site_exists"]:
            raise SiteNotFound(f"site {site_id} does not exist")
        if fast and found["fast"]:
            if found["saved"] != 1:  # the lock and lookup make this unreachable
                raise ServiceError("idempotency record was not written")
            return Outcome(
                ACCEPTED, body, replayed=False, receipt=receipt, event_id=found["event_id"]
            )
        # Careful path: some window of the batch may be stored already.
        row = await conn.fetchrow(
            q["insert_readings"], site_id, stamps, kgs, device_id, batch_id, request_id
        )
        assert row is not None  # an aggregate without GROUP BY returns one row
        others = await _stored_values(conn, q["stored_values"], site_id, row)
        receipt = _receipt(batch_id, site_id, device_id, len(ordered), others, row["accepted"])
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


def _receipt(
    batch_id: UUID,
    site_id: int,
    device_id: str,
    received: int,
    others: list[tuple[datetime, float, float]],
    accepted: int | None = None,
) -> IngestReceipt:
    duplicates, conflicts = classify(others)
    return IngestReceipt(
        batch_id=batch_id,
        site_id=site_id,
        device_id=device_id,
        received=received,
        accepted=received if accepted is None else accepted,
        duplicates=duplicates,
        conflicts=conflicts,
    )


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
