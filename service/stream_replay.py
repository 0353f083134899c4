"""Publish relayed events to the stream again, for consumers whose stream retention passed."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from domain.errors import FieldError
from domain.roles import Actor
from service import audit
from service.infra import queries
from service.infra.errors import InvalidInput

Q = "stream"


async def replay(
    conn: asyncpg.Connection,
    *,
    start: datetime,
    end: datetime,
    actor: Actor,
    dry_run: bool,
) -> tuple[list[int], audit.AuditEntry]:
    """Queue the events created in [start, end) that were relayed for publishing again (or,
    dry run, only say which). Audited either way.

    The relay publishes them with their own event ids: JetStream keeps them (a new stream
    sequence each) unless they were relayed within its duplicate window, which drops them.
    Only events still in the outbox (OUTBOX_RETENTION_DAYS) can be replayed."""
    if start >= end:
        raise InvalidInput([FieldError("/to", "must be after from")])
    q = queries.load(Q)
    async with conn.transaction():
        rows = await conn.fetch(q["select_replay"], start, end)
        chosen = [r["event_id"] for r in rows]
        if chosen and not dry_run:
            await conn.execute(q["requeue"], chosen)
        entry = await audit.record(
            conn,
            actor=actor,
            action="stream.replay",
            params={"from": start.isoformat(), "to": end.isoformat()},
            affected=len(chosen),
            dry_run=dry_run,
        )
    return chosen, entry
