"""Upkeep, hourly and by hand: partitions ahead, retention of what is done, table sizes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from service.infra import queries
from service.infra.migrations import ensure_partitions

Q = "maintenance"


@dataclass(frozen=True)
class RetentionReport:
    outbox_deleted: int
    keys_deleted: int
    deliveries_deleted: int = 0


async def apply_retention(
    conn: asyncpg.Connection, *, outbox_days: int, batch: int = 5000, max_batches: int = 100
) -> RetentionReport:
    """Delete processed events and delivered webhook deliveries older than `outbox_days`
    and expired idempotency records, in bounded batches (short transactions, no long locks).
    An event some delivery still owes (or has dead-lettered) is kept."""
    q = queries.load(Q)
    cutoff = datetime.now(UTC) - timedelta(days=outbox_days)
    totals = [0, 0, 0]
    steps = [
        (q["delete_processed"], (cutoff, batch)),
        (q["delete_expired_keys"], (batch,)),
        (q["delete_delivered"], (cutoff, batch)),
    ]
    for i, (query, args) in enumerate(steps):
        for _ in range(max_batches):
            status = await conn.execute(query, *args)
            deleted = int(status.rsplit(" ", 1)[-1])
            totals[i] += deleted
            if deleted < batch:
                break
    return RetentionReport(
        outbox_deleted=totals[0], keys_deleted=totals[1], deliveries_deleted=totals[2]
    )


async def maintain(conn: asyncpg.Connection, *, outbox_days: int) -> dict[str, Any]:
    """Partitions ahead (moving rows out of the default one) and retention, for cron and CLI."""
    created = await ensure_partitions(conn)
    report = await apply_retention(conn, outbox_days=outbox_days)
    return {
        "partitions_created": created,
        "outbox_deleted": report.outbox_deleted,
        "keys_deleted": report.keys_deleted,
        "deliveries_deleted": report.deliveries_deleted,
    }


async def table_sizes(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["table"]: r["bytes"] for r in await conn.fetch(queries.load(Q)["table_sizes"])}
