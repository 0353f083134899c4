"""The audit trail: every operator write, by whom (token name and role), with what, affecting
how many rows; and reading it back, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domain.roles import Actor, Role
from service.infra import queries


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    role: Role
    action: str
    affected: int
    dry_run: bool


async def record(
    conn: asyncpg.Connection,
    *,
    actor: Actor,
    action: str,
    params: dict[str, Any],
    affected: int = 1,
    dry_run: bool = False,
) -> AuditEntry:
    """Record an operator action (in the caller's transaction)."""
    query = queries.load("audit")["record"]
    row = await conn.fetchrow(query, actor.name, actor.role, action, params, affected, dry_run)
    assert row is not None
    return AuditEntry(row["id"], row["at"], actor.name, actor.role, action, affected, dry_run)


async def list_entries(
    conn: asyncpg.Connection,
    *,
    actor: str | None,
    action: str | None,
    start: datetime | None,
    end: datetime | None,
    before: int,
    limit: int,
) -> list[asyncpg.Record]:
    """Entries newest first with an id below `before`, by actor and action if given, at in
    [start, end)."""
    query = queries.load("audit")["list_audit"]
    return await conn.fetch(query, before, actor, action, start, end, limit)
