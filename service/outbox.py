"""The outbox as ops see it: queue health, events (keyset paged), and replay, audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from redis.asyncio import Redis

from domain.errors import FieldError
from domain.roles import Actor
from service import audit
from service.infra import metrics, queries
from service.infra.db import valid_id
from service.infra.errors import InvalidInput

Q = "outbox"


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
    # Applied events JetStream has yet to acknowledge (0 without NATS_URL) and the oldest's age.
    stream_backlog: int = 0
    stream_backlog_age_s: float = 0.0


async def queue_stats(conn: asyncpg.Connection, redis: Redis | None) -> QueueStats:
    q = queries.load(Q)
    depth = await conn.fetchrow(q["queue_stats"])
    rate = await conn.fetchrow(q["throughput"])
    workers = await conn.fetchrow(q["workers"])
    relay = await conn.fetchrow(queries.load("stream")["backlog"])
    assert depth is not None and rate is not None and workers is not None and relay is not None
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
        stream_backlog=relay["pending"],
        stream_backlog_age_s=round(relay["oldest_age_s"], 3),
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


async def refresh_gauges(conn: asyncpg.Connection) -> None:
    """The outbox gauges come from Postgres, so any API process reports the whole queue."""
    stats = await queue_stats(conn, None)
    metrics.OUTBOX_PENDING.set(stats.pending)
    metrics.OUTBOX_BACKOFF.set(stats.in_backoff)
    metrics.OUTBOX_DEAD.set(stats.dead)
    metrics.OUTBOX_LAG.set(stats.oldest_pending_age_s)
    metrics.STREAM_BACKLOG.set(stats.stream_backlog)
    metrics.STREAM_BACKLOG_AGE.set(stats.stream_backlog_age_s)
    if stats.worker_heartbeat_age_s is not None:
        metrics.WORKER_HEARTBEAT_AGE.set(stats.worker_heartbeat_age_s)


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

    def check(self) -> None:
        """Exactly one mode, and a time range only with a site; else InvalidReplay. (`to` at
        or before `from` is an empty range, as in every [from, to) of the API: the request
        body's schema can state the modes, not an order between two fields.)"""
        by_site = self.site_id is not None and not self.only_dead  # with only_dead: a filter
        if sum([self.event_ids is not None, self.only_dead, by_site]) != 1:
            message = "give exactly one of: event_ids, site_id (with from/to), all_dead"
            raise InvalidReplay([FieldError("", message)])
        if (self.start or self.end) and (self.site_id is None or self.only_dead):
            raise InvalidReplay([FieldError("/from", "a time range needs site_id")])


class InvalidReplay(InvalidInput):
    """A replay selection that names no mode, or more than one."""


async def replay(
    conn: asyncpg.Connection, *, selection: ReplaySelection, actor: Actor, dry_run: bool
) -> tuple[list[int], audit.AuditEntry]:
    """Make the selected events due again (or, dry run, only say which). Audited either way.

    Applying an event recomputes its hours from raw data, so a replay can only change totals
    if the raw data changed.
    """
    selection.check()
    q = queries.load(Q)
    ids = selection.event_ids
    if ids is not None:
        ids = [i for i in ids if valid_id(i)]
    async with conn.transaction():
        start, end = selection.start, selection.end
        # An empty range selects nothing (the query's overlap test would match events that
        # span it backwards).
        empty = start is not None and end is not None and start >= end
        rows = (
            []
            if empty
            else await conn.fetch(
                q["select_replay"], ids, selection.site_id, start, end, selection.only_dead
            )
        )
        chosen = [r["id"] for r in rows]
        if chosen and not dry_run:
            await conn.execute(q["requeue"], chosen)
        entry = await audit.record(
            conn,
            actor=actor,
            action="outbox.replay",
            params=selection.as_params(),
            affected=len(chosen),
            dry_run=dry_run,
        )
    return chosen, entry
