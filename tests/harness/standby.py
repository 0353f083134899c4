"""A local primary and a streaming standby of it, for the tests that follow the primary across
a failover and read from a replica. Never mocks: the standby is `pg_basebackup -R` of the
primary, started from the system binaries by cli.localservers like every local server.

`shared_pair()` is one pair for the whole session (started on first use, ~2 s); a test that
promotes the standby or demotes the primary makes its own with `ReplicatedPostgres()`.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
from pathlib import Path

import asyncpg

from cli.localservers import LocalPostgres
from service.infra import migrations
from tests.harness.processes import free_port, wait_for

_LIVE: set[ReplicatedPostgres] = set()
_OWNER_PID = os.getpid()


class ReplicatedPostgres:
    """A primary (wal_level=replica, PostgreSQL's default) and a hot standby streaming from it,
    on free ports of 127.0.0.1, trusting local logins."""

    def __init__(self) -> None:
        self._dirs = [Path(tempfile.mkdtemp(prefix=f"emissions-{role}-")) for role in "ps"]
        self.primary = LocalPostgres(self._dirs[0], free_port(), durable=False)
        # Feedback: replay never cancels a read the API is running on the standby.
        self.standby = LocalPostgres(
            self._dirs[1], free_port(), durable=False, settings={"hot_standby_feedback": "on"}
        )

    def start(self) -> ReplicatedPostgres:
        _LIVE.add(self)
        try:
            self.primary.start()
            self.standby.clone_standby_of(self.primary.port)
            self.standby.start()
        except BaseException:
            self.close()
            raise
        return self

    def url(self, database: str, *hosts: LocalPostgres, **options: str) -> str:
        """A URL naming `hosts` in order (default: the primary), with query options."""
        ports = ",".join(f"127.0.0.1:{h.port}" for h in hosts or (self.primary,))
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"postgresql://postgres@{ports}/{database}" + (f"?{query}" if query else "")

    async def create_migrated(self, name: str) -> None:
        """A database with every migration applied, on the primary (and so on the standby)."""
        admin = await asyncpg.connect(self.primary.url())
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.primary.url(name))
        try:
            await migrations.migrate(conn)
            await migrations.ensure_partitions(conn)
        finally:
            await conn.close()
        await self.wait_replayed()

    async def wait_replayed(self, timeout: float = 10.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        primary = await asyncpg.connect(self.primary.url())
        try:
            target = await primary.fetchval("SELECT pg_current_wal_insert_lsn()")
        finally:
            await primary.close()
        standby = await asyncpg.connect(self.standby.url())
        try:

            async def replayed() -> bool:
                return bool(
                    await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", target)
                )

            await wait_for(replayed, timeout=timeout, message="the standby never caught up")
        finally:
            await standby.close()

    def close(self) -> None:
        for server in (self.standby, self.primary):
            with contextlib.suppress(Exception):
                server.stop()
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)
        _LIVE.discard(self)


@functools.cache
def shared_pair() -> ReplicatedPostgres:
    """One pair for the session; a test that stops its standby starts it again."""
    return ReplicatedPostgres().start()


async def wait_writable(url: str, timeout: float = 30.0) -> None:
    """Until the server at `url` accepts writes (a promoted standby)."""

    async def writable() -> bool:
        conn = await asyncpg.connect(url)
        try:
            return not await conn.fetchval("SELECT pg_is_in_recovery()")
        finally:
            await conn.close()

    await wait_for(writable, timeout=timeout, message=f"{url} never became writable")


@atexit.register
def _close_all() -> None:
    if os.getpid() != _OWNER_PID:
        return
    for pair in list(_LIVE):
        pair.close()
