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
from service.infra.errors import InvalidInput, ServiceError

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


@dataclass(frozen=True)
class OutboxFilter:
    """Which events a list shows: a state ('all', 'pending', 'backoff', 'dead', 'processed')
    and, each None for any, site, type, the payload's batch and request ids, and creation
    time in [created_from, created_to)."""

    status: str = "all"
    site_id: int | None = None
    event_type: str | None = None
    batch_id: str | None = None
    request_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


async def list_outbox(
    conn: asyncpg.Connection,
    *,
    status: str,
    site_id: int | None,
    before: int,
    limit: int,
    event_type: str | None = None,
    where: OutboxFilter | None = None,
) -> list[asyncpg.Record]:
    """Events newest first with an id below `before`; `where` (if given) is the whole filter."""
    f = where or OutboxFilter(status=status, site_id=site_id, event_type=event_type)
    query = queries.load(Q)["list_outbox"]
    return await conn.fetch(
        query,
        before,
        f.status,
        f.site_id,
        limit,
        f.event_type,
        f.batch_id,
        f.request_id,
        f.created_from,
        f.created_to,
    )


class OutboxEventNotFound(ServiceError):
    """No outbox event has this id (retention deletes processed events after a while)."""


@dataclass(frozen=True)
class EventDetail:
    """One event for triage: its row, every recorded failure, and the replays that concern it."""

    event: asyncpg.Record
    errors: list[asyncpg.Record]
    audit: list[asyncpg.Record]


async def event_detail(conn: asyncpg.Connection, event_id: int) -> EventDetail:
    q = queries.load(Q)
    if not valid_id(event_id):
        raise OutboxEventNotFound()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        event = await conn.fetchrow(q["get_event"], event_id)
        if event is None:
            raise OutboxEventNotFound()
        errors = await conn.fetch(q["event_errors"], event_id)
        history = await conn.fetch(q["event_audit"], event_id)
    return EventDetail(event, errors, history)


@dataclass(frozen=True)
class ReplaySelection:
    """Which events to replay: explicit ids, or a site (and data time range), or every dead
    one, optionally of one site and type, created in [created_from, created_to)."""

    event_ids: list[int] | None = None
    site_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    only_dead: bool = False
    event_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def as_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "event_ids": self.event_ids,
            "site_id": self.site_id,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "only_dead": self.only_dead,
        }
        # Only when used, so the audit of the older modes reads as it always has.
        for name, value in (
            ("event_type", self.event_type),
            ("created_from", self.created_from),
            ("created_to", self.created_to),
        ):
            if value is not None:
                params[name] = value.isoformat() if isinstance(value, datetime) else value
        return params

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
        for name, value in (
            ("event_type", self.event_type),
            ("created_from", self.created_from),
            ("created_to", self.created_to),
        ):
            if value is not None and not self.only_dead:
                raise InvalidReplay([FieldError(f"/{name}", "only with all_dead")])


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
                q["select_replay"],
                ids,
                selection.site_id,
                start,
                end,
                selection.only_dead,
                selection.event_type,
                selection.created_from,
                selection.created_to,
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
