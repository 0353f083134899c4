"""Operator use cases: queue health, outbox listing, replay, rebuild, retention, with an audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis

from service import aggregates
from service.infra import queries
from service.infra.migrations import ensure_partitions
from service.sites import valid_id

Q = "ops"


class QueueStats(msgspec.Struct, kw_only=True):
    """The outbox and the workers at a glance (also the body of GET /v1/ops/queue)."""

    pending: int
    in_backoff: int
    dead: int
    oldest_pending_age_s: float
    processed_last_minute: int
    processed_last_hour: int
    workers_alive: int
    worker_heartbeat_age_s: float | None
    arq_queue_depth: int | None


async def queue_stats(conn: asyncpg.Connection, redis: Redis | None) -> QueueStats:
    q = queries.load(Q)
    depth = await conn.fetchrow(q["queue_stats"])
    rate = await conn.fetchrow(q["throughput"])
    workers = await conn.fetchrow(q["workers"])
    assert depth is not None and rate is not None and workers is not None
    return QueueStats(
        pending=depth["pending"],
        in_backoff=depth["in_backoff"],
        dead=depth["dead"],
        oldest_pending_age_s=round(depth["oldest_pending_age_s"], 3),
        processed_last_minute=rate["last_minute"],
        processed_last_hour=rate["last_hour"],
        workers_alive=workers["alive"],
        worker_heartbeat_age_s=workers["heartbeat_age_s"],
        arq_queue_depth=await arq_queue_depth(redis),
    )


async def arq_queue_depth(redis: Redis | None) -> int | None:
    """Jobs waiting in arq's queue; None when Redis cannot be asked (it is only a doorbell)."""
    if redis is None:
        return None
    try:
        depth: int = await redis.zcard("arq:queue")
    except Exception:
        return None
    return depth


async def list_outbox(
    conn: asyncpg.Connection,
    *,
    status: str,
    site_id: int | None,
    before: int,
    limit: int,
    event_type: str | None = None,
) -> list[asyncpg.Record]:
    query = queries.load(Q)["list_outbox"]
    return await conn.fetch(query, before, status, site_id, limit, event_type)


@dataclass(frozen=True)
class ReplaySelection:
    """Which events to replay: explicit ids, or a site (and time range), or every dead one."""

    event_ids: list[int] | None = None
    site_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    only_dead: bool = False

    def as_params(self) -> dict[str, Any]:
        return {
            "event_ids": self.event_ids,
            "site_id": self.site_id,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "only_dead": self.only_dead,
        }


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    affected: int
    dry_run: bool


async def audit(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    params: dict[str, Any],
    affected: int = 1,
    dry_run: bool = False,
) -> AuditEntry:
    """Record an operator action (in the caller's transaction)."""
    row = await conn.fetchrow(queries.load(Q)["audit"], actor, action, params, affected, dry_run)
    assert row is not None
    return AuditEntry(row["id"], row["at"], actor, action, affected, dry_run)


async def replay(
    conn: asyncpg.Connection, *, selection: ReplaySelection, actor: str, dry_run: bool
) -> tuple[list[int], AuditEntry]:
    """Make the selected events due again (or, dry run, only say which). Audited either way.

    Applying an event recomputes its hours from raw data, so a replay can only change totals
    if the raw data changed.
    """
    q = queries.load(Q)
    ids = selection.event_ids
    if ids is not None:
        ids = [i for i in ids if valid_id(i)]
    async with conn.transaction():
        rows = await conn.fetch(
            q["select_replay"],
            ids,
            selection.site_id,
            selection.start,
            selection.end,
            selection.only_dead,
        )
        chosen = [r["id"] for r in rows]
        if chosen and not dry_run:
            await conn.execute(q["requeue"], chosen)
        entry = await audit(
            conn,
            actor=actor,
            action="outbox.replay",
            params=selection.as_params(),
            affected=len(chosen),
            dry_run=dry_run,
        )
    return chosen, entry


async def rebuild(
    conn: asyncpg.Connection, *, site_id: int | None, actor: str
) -> tuple[int, int, AuditEntry]:
    """Recompute every bucket of one site (or of all sites) from raw data. Returns (sites, buckets).

    One transaction per site: a long rebuild of many sites never holds every site's lock.
    """
    if site_id is None:
        site_ids = [r["id"] for r in await conn.fetch(queries.load(Q)["site_ids"])]
    else:
        site_ids = [site_id]
    buckets = 0
    for sid in site_ids:
        async with conn.transaction():
            buckets += await aggregates.rebuild_site(
                conn, site_id=sid, year=aggregates.current_year()
            )
    entry = await audit(
        conn,
        actor=actor,
        action="aggregates.rebuild",
        params={"site_id": site_id},
        affected=len(site_ids),
        dry_run=False,
    )
    return len(site_ids), buckets, entry


async def hourly(
    conn: asyncpg.Connection, *, site_id: int, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    return await conn.fetch(queries.load(Q)["hourly"], site_id, start, end)


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
    delivery_q = queries.load("delivery")
    cutoff = datetime.now(UTC) - timedelta(days=outbox_days)
    totals = [0, 0, 0]
    steps = [
        (q["delete_processed"], (cutoff, batch)),
        (q["delete_expired_keys"], (batch,)),
        (delivery_q["delete_delivered"], (cutoff, batch)),
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
