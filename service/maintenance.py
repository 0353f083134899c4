"""Upkeep, every 10 minutes and by hand: partitions ahead, retention, table sizes."""

from __future__ import annotations

import time
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
    relays_deleted: int = 0
    samples_deleted: int = 0
    workers_deleted: int = 0


async def apply_retention(
    conn: asyncpg.Connection,
    *,
    outbox_days: int,
    history_days: int = 14,
    batch: int = 5000,
    budget_s: float = 20.0,
) -> RetentionReport:
    """Delete processed events and delivered webhook deliveries older than `outbox_days`
    and expired idempotency records, and queue samples and workers not seen for `history_days`,
    in bounded batches (short transactions, no long locks).
    An event some delivery still owes (or has dead-lettered) is kept.

    The three tables take turns, one batch each, until all are done or `budget_s` has passed
    (the worker's job timeout is 30 s): a fixed count of batches per run fell behind the rows
    a fleet of ~8k devices posting every minute creates; the next run goes on from there."""
    q = queries.load(Q)
    cutoff = datetime.now(UTC) - timedelta(days=outbox_days)
    history_cutoff = datetime.now(UTC) - timedelta(days=history_days)
    steps = [
        (q["delete_processed"], (cutoff, batch)),
        (q["delete_expired_keys"], (batch,)),
        (q["delete_delivered"], (cutoff, batch)),
        (q["delete_relayed"], (cutoff, batch)),
        (q["delete_old_samples"], (history_cutoff, batch)),
        (q["delete_gone_workers"], (history_cutoff, batch)),
    ]
    totals = [0] * len(steps)
    pending = set(range(len(steps)))
    deadline = time.monotonic() + budget_s
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            query, args = steps[i]
            deleted = int((await conn.execute(query, *args)).rsplit(" ", 1)[-1])
            totals[i] += deleted
            if deleted < batch:
                pending.discard(i)
    return RetentionReport(
        outbox_deleted=totals[0],
        keys_deleted=totals[1],
        deliveries_deleted=totals[2],
        relays_deleted=totals[3],
        samples_deleted=totals[4],
        workers_deleted=totals[5],
    )


async def maintain(
    conn: asyncpg.Connection, *, outbox_days: int, history_days: int = 14
) -> dict[str, Any]:
    """Partitions ahead (moving rows out of the default one) and retention, for cron and CLI."""
    created = await ensure_partitions(conn)
    report = await apply_retention(conn, outbox_days=outbox_days, history_days=history_days)
    return {
        "partitions_created": created,
        "outbox_deleted": report.outbox_deleted,
        "keys_deleted": report.keys_deleted,
        "deliveries_deleted": report.deliveries_deleted,
        "relays_deleted": report.relays_deleted,
        "samples_deleted": report.samples_deleted,
        "workers_deleted": report.workers_deleted,
    }


async def analyze_outgrown_partitions(conn: asyncpg.Connection) -> list[str]:
    """ANALYZE each measurements partition that outgrew its statistics; their names.

    A partition analyzed while empty (an operator's database-wide ANALYZE, or vacuumdb after
    a restore, reaching a month created ahead) is planned as a scan of nothing. Every session's
    cached generic plan keeps that scan while the month fills, until autovacuum analyzes it
    (50 rows plus 10%, checked once a minute at best, later when its workers are busy): the
    API's ingest statement and the drain then read the whole partition per request or bucket
    (make bench --analyze-first: 7-19 s requests and 503s). ANALYZE refreshes the statistics
    and invalidates those plans in every session, which replan with the index.
    """
    found = [r["partition"] for r in await conn.fetch(queries.load(Q)["outgrown_partitions"])]
    for name in found:
        await conn.execute(f"ANALYZE {name}")  # a name from the catalog, quoted by format()
    return found


async def table_sizes(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["table"]: r["bytes"] for r in await conn.fetch(queries.load(Q)["table_sizes"])}
