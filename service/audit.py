"""The audit trail: every operator write, by whom, with what, affecting how many rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from service.infra import queries


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    affected: int
    dry_run: bool


async def record(
    conn: asyncpg.Connection,
    *,
    actor: str,
    action: str,
    params: dict[str, Any],
    affected: int = 1,
    dry_run: bool = False,
) -> AuditEntry:
    """Record an operator action (in the caller's transaction)."""
    query = queries.load("audit")["record"]
    row = await conn.fetchrow(query, actor, action, params, affected, dry_run)
    assert row is not None
    return AuditEntry(row["id"], row["at"], actor, action, affected, dry_run)
