"""The asyncpg pool and the one place driver connection failures become DatabaseUnavailable."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import structlog
from asyncpg.connect_utils import SessionAttribute

from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings, host_list, target_session_attrs

log = structlog.get_logger("db")
# Ids are bigints, but the contract caps them at 2**53 - 1, the largest integer every JSON reader
# (a JavaScript client, a float-based generator such as schemathesis) holds exactly (RFC 7493
# I-JSON, section 2.2); with 2**63 - 1 a client's 2**63 + 191 read as "at most the maximum".
# Sequences start at 1 and would need 2**53 inserts to get there.
MAX_ID = 2**53 - 1


def valid_id(value: int) -> bool:
    """Whether a row id can exist (positive, at most MAX_ID): a lookup of any other is a 404
    without a query (and never a driver overflow error)."""
    return 0 < value <= MAX_ID


# Failures that mean "the server is not there, or is no longer the primary", as opposed to a
# bad statement: each is a 503 + Retry-After at the API and a pause in the worker, never a
# failed event. After a failover the old primary is gone (connection errors) or back as a
# standby (25006 read-only, 57P01 when Patroni restarts it); TargetServerAttributeNotMatched
# is a multi-host DSN finding no host that is read-write yet (mid-election); 25P03 is the
# server ending a session it thought idle (see POOL_SETTINGS).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.TargetServerAttributeNotMatched,
    TimeoutError,
)


def is_outage(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """Whether `exc` means the database is unreachable or read-only (retry later), rather
    than a bad statement. An InterfaceError counts only on a connection that is closed."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and conn is not None and conn.is_closed()


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
# extra_float_digits > 0 (PostgreSQL's default, pinned against a database-wide setting): a
# float8 as text is its shortest exact decimal, which is how the drain counts a reading
# (sql/queries/aggregates.sql); at 0 or less the totals would round every reading.
SERVER_SETTINGS = {
    "timezone": "UTC",
    "application_name": "emissions-engine",
    "jit": "off",
    "extra_float_digits": "1",
}
# Pooled sessions (API and worker) also tell the server when to give up on us. A process whose
# machine vanished, or that a partition cut off, would otherwise keep its session, and the
# row locks of an open transaction (a worker's SKIP LOCKED claim, ingest's advisory lock on
# an Idempotency-Key), until the server's kernel gives up on the socket: hours. Instead the
# server probes an idle client after 10 s, every 5 s, and drops it after 3 unanswered probes;
# drops it when what it sent is unacknowledged for 30 s (tcp_user_timeout, e.g. a claim's
# rows); and ends a session idle inside a transaction for 60 s. Our transactions never wait
# on anything but their own statements (HTTP, Redis and request bodies stay outside them), so
# 60 s idle in a transaction only happens to a process that is gone; its claim rolls back and
# another worker takes the rows. The CLI's own connections keep the server's defaults (an
# operator may hold a transaction open in a session of their own).
POOL_SETTINGS = {
    **SERVER_SETTINGS,
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "idle_in_transaction_session_timeout": "60000",
}

# The worker's sessions plan every statement for its parameters and for the tables as they
# are now (no cached generic plan). A generic plan is planned once and kept until a table's
# statistics change: a month partition that was analyzed while empty (an operator's
# database-wide ANALYZE, vacuumdb after a restore, or a month created ahead) is planned as a
# sequential scan of nothing, and the drain's recompute kept that plan while the partition
# filled: one scan of the whole partition per (site, hour) bucket, ~1-10 s per drain (bench
# --analyze-first: lag p99 5.6 s and 503s; postgres.log, auto_explain). Planning each time
# costs what the drain can spare: ~4 ms per recompute of 50 buckets either way (64
# partitions), once per claim of up to DRAIN_BATCH_SIZE events. The API keeps generic plans:
# its one ingest statement is planned once, not per request.
WORKER_POOL_SETTINGS = {**POOL_SETTINGS, "plan_cache_mode": "force_custom_plan"}

# Ingest's fast-path connections (service/ingest.py, FastLane) keep generic plans, always: the
# server's default would plan its group statement afresh on every run (~0.35 ms of CPU, more
# than the group saves). Its statements touch one site's few windows by primary key; a
# generic plan prunes partitions when it runs.
INGEST_POOL_SETTINGS = {**POOL_SETTINGS, "plan_cache_mode": "force_generic_plan"}


# A host failing with one of these passes to the next host of the DSN.
_NEXT_HOST: tuple[type[Exception], ...] = (OSError, TimeoutError, asyncpg.PostgresError)


def split_hosts(dsn: str) -> list[str]:
    """One DSN per host of a multi-host DSN (`postgresql://u@h1:5432,h2:5433/db?...`), in
    order, each keeping the user, database and options; [dsn] when it names one host."""
    hosts = host_list(dsn)
    if len(hosts) < 2:
        return [dsn]
    parts = urlsplit(dsn)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}")) for host in hosts]


async def connect_hosts(dsn: str, *, timeout_s: float = 5.0, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, with `timeout_s` per host of a multi-host DSN, like libpq's connect_timeout.

    asyncpg tries a DSN's hosts in order but within one timeout for all of them: a first host
    that drops packets (a lost machine) would use it all and the primary behind it would never
    be tried. Here each host gets its own `timeout_s`, and any host that fails (refuses, times
    out, is starting or shutting down, lacks the database, does not match
    target_session_attrs) passes to the next, as with libpq.
    prefer-standby takes the first standby, else the first host that answered.
    """
    hosts = split_hosts(dsn)
    if len(hosts) == 1:
        return await asyncpg.connect(dsn, timeout=timeout_s, **kwargs)
    attrs = SessionAttribute(kwargs.pop("target_session_attrs", None) or target_session_attrs(dsn))
    prefer_standby = attrs is SessionAttribute.prefer_standby
    wanted = SessionAttribute.standby if prefer_standby else attrs
    answered: list[str] = []
    errors: list[BaseException] = []
    for host in hosts:
        try:
            return await asyncpg.connect(
                host, timeout=timeout_s, target_session_attrs=wanted, **kwargs
            )
        except asyncpg.TargetServerAttributeNotMatched as exc:
            answered.append(host)
            errors.append(exc)
        except _NEXT_HOST as exc:
            errors.append(exc)  # e.g. a standby that has not replayed CREATE DATABASE yet
    if prefer_standby:
        for host in answered:  # no standby answered: any host that did
            try:
                return await asyncpg.connect(
                    host, timeout=timeout_s, target_session_attrs=SessionAttribute.any, **kwargs
                )
            except _NEXT_HOST as exc:
                errors.append(exc)
    # What a server said (no such database, bad password) tells more than a refused port.
    said = [e for e in errors if isinstance(e, asyncpg.PostgresError)]
    raise (said or errors)[-1]


async def connect(dsn: str, *, timeout_s: float = 5.0) -> asyncpg.Connection:
    """One connection set up exactly like the pool's (for the CLI and migrations)."""
    conn = await connect_hosts(dsn, timeout_s=timeout_s, server_settings=SERVER_SETTINGS)
    await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (one round trip per release, two per ingest).

    Nothing run on pooled connections leaves session state behind: no SET, LISTEN, cursor
    or session advisory lock (ingest's lock is transaction-scoped; migrations' session lock
    is taken on their own connection). asyncpg still rolls back an open transaction.
    """


async def create_pool(
    settings: Settings,
    *,
    dsn: str | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    server_settings: Mapping[str, str] = POOL_SETTINGS,
) -> asyncpg.Pool:
    max_size = settings.db_pool_max if max_size is None else max_size
    min_size = settings.db_pool_min if min_size is None else min_size
    pool = await asyncpg.create_pool(
        dsn or settings.database_url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        command_timeout=settings.db_command_timeout_s,
        connect=functools.partial(connect_hosts, timeout_s=settings.db_connect_timeout_s),
        init=init_connection,
        reset=_keep_session,
        server_settings=dict(server_settings),
    )
    assert pool is not None
    return pool


async def open_pool(
    settings: Settings, *, wait_s: float = 30.0, server_settings: Mapping[str, str] = POOL_SETTINGS
) -> asyncpg.Pool:
    """The pool, waiting up to `wait_s` for a primary to answer: containers start in any
    order, and a process (re)started mid-failover finds no read-write host for a while."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            return await create_pool(settings, server_settings=server_settings)
        except CONNECTION_ERRORS as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("postgres_unreachable", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1.0)


class connection:  # a context manager used as a function: `async with db.connection(pool)`
    """A pooled connection; a lost, unreachable or read-only server surfaces as
    DatabaseUnavailable, and the pool forgets the server it was connected to.

    The failed connection is terminated, not released: it may be mid-statement on a socket
    that no longer answers (a timeout), or open to a primary demoted to a standby. Its idle
    siblings were opened to the same server, so the pool replaces them on their next acquire
    (expire_connections); the new connections find the current primary through the DSN's
    hosts and target_session_attrs. No process restarts after a failover.

    A class rather than an @asynccontextmanager generator: every request enters one, and the
    generator's machinery cost ~15 us of CPU each time (10% of a pooled round trip).
    """

    __slots__ = ("_acquired", "_conn", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._acquired = pool.acquire()

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            # The pool hands out a proxy that behaves as a Connection in every way we use.
            self._conn = cast(asyncpg.Connection, await self._acquired.__aenter__())
        except CONNECTION_ERRORS as exc:  # opening a connection (acquire) failed
            raise DatabaseUnavailable() from exc
        return self._conn

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        outage = isinstance(exc, Exception) and is_outage(exc, self._conn)
        try:
            if outage:
                self._conn.terminate()
                await self._pool.expire_connections()
            await self._acquired.__aexit__(kind, exc, tb)  # released (or discarded, if closed)
        except CONNECTION_ERRORS as err:
            raise DatabaseUnavailable() from err
        if outage:
            raise DatabaseUnavailable() from exc
