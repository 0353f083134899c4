"""Reads that tolerate lag: on the replica pool when READ_DATABASE_URL is set, with how stale
they may be; on the primary when there is no replica or it cannot answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import structlog

from service.infra import db, queries
from service.infra.errors import DatabaseUnavailable

log = structlog.get_logger("db")
# After the replica failed to answer, reads go to the primary this long before it is tried
# again: a replica that drops packets would otherwise cost every read a connect timeout.
RETRY_REPLICA_S = 5.0


@dataclass(frozen=True, slots=True)
class Read:
    """A connection for a read, and how stale its data may be: seconds behind the primary
    (0.0 when read on the primary because the replica could not answer); None when no
    replica is configured (the primary, by design)."""

    conn: asyncpg.Connection
    lag_s: float | None


class Reads:
    """Where reads that tolerate lag go. Writes, key and token lookups and read-your-write
    stay on the primary pool; only callers that accept stale data come here."""

    def __init__(self, primary: asyncpg.Pool, replica: asyncpg.Pool | None) -> None:
        self.primary = primary
        self.replica = replica
        self._skip_until = 0.0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Read]:
        async with AsyncExitStack() as stack:
            read = await self._on_replica(stack) if self._replica_usable() else None
            if read is None:
                conn = await stack.enter_async_context(db.connection(self.primary))
                read = Read(conn, None if self.replica is None else 0.0)
            yield read

    def _replica_usable(self) -> bool:
        return self.replica is not None and time.monotonic() >= self._skip_until

    async def _on_replica(self, outer: AsyncExitStack) -> Read | None:
        """A replica connection and its lag, owned by `outer`; None (and the replica skipped
        for a while) when it cannot be reached or cannot say how stale it is."""
        assert self.replica is not None
        try:
            async with AsyncExitStack() as stack:
                conn = await stack.enter_async_context(_replica_connection(self.replica))
                lag_s = await conn.fetchval(queries.load("replica")["replica_lag"])
                if lag_s is None:
                    raise _UnknownLag()
                outer.push_async_exit(stack.pop_all())
                return Read(conn, lag_s)
        except (DatabaseUnavailable, _UnknownLag) as exc:
            self._skip_until = time.monotonic() + RETRY_REPLICA_S
            log.warning(
                "replica_unavailable",
                reason=type(exc.__cause__ or exc).__name__,
                fallback="primary",
                retry_in_s=RETRY_REPLICA_S,
            )
            return None


class _UnknownLag(Exception):
    """The replica has replayed nothing since it started: how stale it is cannot be said."""


@asynccontextmanager
async def _replica_connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """db.connection, plus a standby's own way of failing a read: a query cancelled because
    replay needed what it read ("conflict with recovery", 40001) is a 503 to retry, not a 500."""
    try:
        async with db.connection(pool) as conn:
            yield conn
    except asyncpg.SerializationError as exc:
        raise DatabaseUnavailable() from exc
