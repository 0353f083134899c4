"""The asyncpg pool and the one place driver connection failures become DatabaseUnavailable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import asyncpg
import msgspec

from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings

MAX_ID = 2**63 - 1  # ids are bigints: a larger id cannot exist


def valid_id(value: int) -> bool:
    """Whether a row id can exist (ids are positive bigints): a lookup of any other is a 404
    without a query (and never a driver overflow error)."""
    return 0 < value <= MAX_ID


# Failures that mean "the server is not there", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    TimeoutError,
)


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as msgspec-encoded JSON (faster than the stdlib json codec)."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


# Buckets and years are UTC whatever the server's default zone is. No JIT: a drain's
# recompute of thousands of buckets is estimated costly enough to be JIT-compiled, which
# takes longer (~0.4 s) than running it; none of our statements is long enough to gain.
SERVER_SETTINGS = {"timezone": "UTC", "application_name": "emissions-engine", "jit": "off"}


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection set up exactly like the pool's (for the CLI and migrations)."""
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (one round trip per release, two per ingest).

    Nothing run on pooled connections leaves session state behind: no SET, LISTEN, cursor
    or session advisory lock (ingest's lock is transaction-scoped; migrations' session lock
    is taken on their own connection). asyncpg still rolls back an open transaction.
    """


async def create_pool(settings: Settings, *, dsn: str | None = None) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
        init=init_connection,
        reset=_keep_session,
        server_settings=SERVER_SETTINGS,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; a lost or unreachable server surfaces as DatabaseUnavailable."""
    try:
        async with pool.acquire() as conn:
            # The pool hands out a proxy that behaves as a Connection in every way we use.
            yield cast(asyncpg.Connection, conn)
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable() from exc
