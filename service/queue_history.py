"""Queue history: a sample of the outbox and deliveries per interval, written by whichever
worker is first, served downsampled; and the workers as their heartbeats describe them."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import asyncpg
import structlog

from service.infra import db, queries
from service.infra.errors import DatabaseUnavailable

log = structlog.get_logger("worker")
Q = "queue_history"


async def sample(conn: asyncpg.Connection, *, every_s: int) -> datetime | None:
    """Record the current bucket's sample unless a worker already did; its `at`, or None.

    The bucket comes from the database clock, so workers on hosts whose clocks differ still
    agree on it; the primary key settles a race (the loser's insert does nothing)."""
    q = queries.load(Q)
    bucket: datetime | None = await conn.fetchval(q["free_bucket"], every_s)
    if bucket is None:
        return None  # taken: the costly counts are not run again
    at: datetime | None = await conn.fetchval(q["insert_sample"], bucket, every_s)
    return at


async def sample_forever(pool: asyncpg.Pool, *, every_s: int) -> None:
    """Sample once per `every_s`, half an interval into each bucket: the counted interval (the
    previous bucket) ended that long ago, so drain transactions open across its end have
    mostly committed. A Postgres outage only leaves gaps."""
    while True:
        await asyncio.sleep(every_s - (time.time() % every_s) + every_s / 2)
        try:
            async with db.connection(pool) as conn:
                await sample(conn, every_s=every_s)
        except DatabaseUnavailable:
            log.warning("queue_sample_skipped", reason="postgres unreachable or read-only")
        except Exception:  # never let one bad sample end the loop for the process's life
            log.exception("queue_sample_failed")


async def history(
    conn: asyncpg.Connection, *, start: datetime, end: datetime, step_s: int
) -> list[asyncpg.Record]:
    """Samples in [start, end) per `step_s` bucket (aligned to `start`): gauges at their
    highest, counters summed; buckets without samples are left out."""
    return await conn.fetch(queries.load(Q)["history"], start, end, step_s)


async def list_workers(
    conn: asyncpg.Connection, *, since: datetime, limit: int, stale_s: float
) -> list[asyncpg.Record]:
    return await conn.fetch(queries.load(Q)["list_workers"], since, limit, stale_s)
