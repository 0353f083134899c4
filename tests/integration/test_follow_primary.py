"""Every process follows the primary (issue 14): a multi-host DATABASE_URL reaches the primary
past hosts that are dead, silent or standbys; a primary turned read-only answers 503 (never
500, nothing written), and the same API and worker processes carry on against the standby
once it is promoted, without a restart; the worker pauses meanwhile and dead-letters nothing.
Real servers: a primary and its streaming standby (tests/harness/standby.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from domain.readings import Window
from service.infra import db
from service.ingest import record_batch, submit
from tests.conftest import ADMIN_TOKEN
from tests.harness.processes import ApiProcess, WorkerProcess, free_port, wait_for
from tests.harness.services import RedisServer
from tests.harness.standby import ReplicatedPostgres, shared_pair, wait_writable
from tests.integration.helpers import BASE_TS, batch, make_site, post_batch, readings, run_cli

pytestmark = pytest.mark.slow

DB = "emissions"
COUNTED = ("measurements", "outbox", "ingest_requests")


@pytest.fixture
def pair() -> Iterator[ReplicatedPostgres]:
    """A pair of this test's own: it demotes the primary and promotes the standby."""
    replicated = ReplicatedPostgres().start()
    yield replicated
    replicated.close()


def cluster_url(pair: ReplicatedPostgres, *, first: str = "") -> str:
    """Primary then standby, writes bound to whichever is read-write (`first`: a host before)."""
    hosts = f"{first}127.0.0.1:{pair.primary.port},127.0.0.1:{pair.standby.port}"
    return f"postgresql://postgres@{hosts}/{DB}?target_session_attrs=read-write"


async def set_read_only(url: str, on: bool) -> None:
    """The primary refuses writes (as a demoted primary does) for new and open sessions."""
    conn = await asyncpg.connect(url)
    try:
        if on:
            await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def promote(pair: ReplicatedPostgres) -> None:
    await pair.wait_replayed()
    conn = await asyncpg.connect(pair.standby.url())
    try:
        await conn.execute("SELECT pg_promote()")
    finally:
        await conn.close()
    await wait_writable(pair.standby.url(DB))


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in COUNTED}
    finally:
        await conn.close()


@pytest.fixture
async def api_client(
    pair: ReplicatedPostgres, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[ApiProcess, httpx.AsyncClient]]:
    await pair.create_migrated(DB)
    env = {"DATABASE_URL": cluster_url(pair), "REDIS_URL": redis_server.url, "DB_POOL_MIN": "2"}
    api = ApiProcess(env=env, log_dir=tmp_path)
    await api.start()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as client:
            yield api, client
    finally:
        await api.stop()
        print(api.tail())


async def test_a_multi_host_url_reaches_the_primary_past_a_dead_port_and_a_standby(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    pair = shared_pair()
    name = f"follow_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dead = free_port()  # nothing listens there
    hosts = f"127.0.0.1:{dead},127.0.0.1:{pair.standby.port},127.0.0.1:{pair.primary.port}"
    url = f"postgresql://postgres@{hosts}/{name}?target_session_attrs=read-write"
    env = {"DATABASE_URL": url, "LOG_JSON": "true"}
    done = await run_cli("migrate", env=env)  # creates the database: on the primary
    assert done.returncode == 0, done.stderr
    api = ApiProcess(env={**env, "REDIS_URL": redis_server.url}, log_dir=tmp_path)
    await api.start()
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as client:
            site = await make_site(client)
            response = await post_batch(client, site, batch(readings(3)))
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 3
    finally:
        await api.stop()
    assert (await counts(pair.primary.url(name)))["measurements"] == 3


async def test_a_silent_host_costs_one_connect_timeout_then_the_next_host_answers() -> None:
    pair = shared_pair()
    with socket.socket() as silent:  # accepts TCP, never says a word: a host that hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port},127.0.0.1:{pair.primary.port}/postgres"
        started = time.monotonic()
        conn = await db.connect(url, timeout_s=0.5)
        elapsed = time.monotonic() - started
    try:
        assert await conn.fetchval("SELECT NOT pg_is_in_recovery()")
    finally:
        await conn.close()
    assert 0.5 <= elapsed < 3.0  # the silent host had its 0.5 s, no more


async def test_writes_to_a_read_only_primary_are_503_and_the_same_api_follows_the_promoted_standby(
    pair: ReplicatedPostgres, api_client: tuple[ApiProcess, httpx.AsyncClient]
) -> None:
    api, client = api_client
    pid = api.pid
    site = await make_site(client)
    first = await post_batch(client, site, batch(readings(2)))
    assert first.status_code == 202, first.text

    await set_read_only(pair.primary.url(), True)
    before = await counts(pair.primary.url(DB))
    key = uuid.uuid4().hex
    items = batch(readings(3, start=BASE_TS + timedelta(days=1)))
    for _ in range(2):  # the open connections, then new ones (no read-write host at all)
        refused = await post_batch(client, site, items, key=key)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["type"].endswith("/database-unavailable")
    assert await counts(pair.primary.url(DB)) == before  # nothing written

    await promote(pair)

    # The device retries with the same key; the same process now writes to the new primary.
    async def accepted() -> httpx.Response | None:
        response = await post_batch(client, site, items, key=key)
        return response if response.status_code == 202 else None

    retried = await wait_for(accepted, timeout=20, interval=0.5, message="never accepted")
    assert retried.json()["accepted"] == 3
    assert api.running and api.pid == pid
    assert (await counts(pair.standby.url(DB)))["measurements"] == 5


async def test_a_worker_pauses_while_the_primary_is_read_only_and_drains_on_the_promoted_standby(
    pair: ReplicatedPostgres, redis_server: RedisServer, tmp_path: Path
) -> None:
    await pair.create_migrated(DB)
    # One attempt only: had the outage counted as a failed attempt, the events would be dead.
    env = {"DRAIN_MAX_ATTEMPTS": "1", "DB_POOL_MIN": "2"}
    worker = WorkerProcess(
        database_url=cluster_url(pair), redis_url=redis_server.url, log_dir=tmp_path, env=env
    )
    async with worker:
        await set_read_only(pair.primary.url(), True)
        site = await _write_events(pair.primary.url(DB), batches=3)
        await worker.wait_until(lambda: worker.events("drain_skipped"), what="paused")
        await asyncio.sleep(2.0)  # a few more sweeps against the read-only primary
        outbox = await _outbox(pair.primary.url(DB))
        assert [(e["processed"], e["attempts"], e["dead"]) for e in outbox] == [
            (False, 0, False)
        ] * 3

        await promote(pair)

        async def drained() -> bool:
            return all(e["processed"] for e in await _outbox(pair.standby.url(DB)))

        await worker.wait_until(drained, timeout=30, what="drained on the new primary")
        assert worker.running
        outbox = await _outbox(pair.standby.url(DB))
        assert [(e["attempts"], e["dead"]) for e in outbox] == [(0, False)] * 3
        conn = await asyncpg.connect(pair.standby.url(DB))
        try:
            total = await conn.fetchval("SELECT readings FROM site_totals WHERE site_id = $1", site)
        finally:
            await conn.close()
        assert total == 6
    print(worker.tail())


async def _write_events(url: str, *, batches: int) -> int:
    """A site and `batches` accepted batches of 2 readings, written past the primary's
    read-only default (this session's own setting), as ingest writes them."""
    conn = await db.connect(url)
    try:
        await conn.execute("SET default_transaction_read_only = off")
        site: int = await conn.fetchval(
            "INSERT INTO sites (name, emission_limit_kg) VALUES ($1, 1000) RETURNING id",
            f"site-{uuid.uuid4().hex[:6]}",
        )
        for i in range(batches):
            items = [Window(BASE_TS + timedelta(hours=i, minutes=15 * j), 1.0) for j in range(2)]
            await record_batch(
                conn,
                submit(
                    site_id=site,
                    device_id="dev-1",
                    key=f"k{i}",
                    readings=items,
                    request_id=f"r{i}",
                    retention=timedelta(days=1),
                ),
            )
        return site
    finally:
        await conn.close()


async def _outbox(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT processed_at IS NOT NULL AS processed, attempts, dead_at IS NOT NULL AS dead"
            " FROM outbox WHERE event_type = 'measurements.accepted' ORDER BY id"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]
