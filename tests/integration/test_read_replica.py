"""Reads off the primary (issue 14): with READ_DATABASE_URL on a streaming standby, the
lag-tolerant reads come from the standby and say how stale they may be (Replica-Lag); writes
and device keys stay on the primary; a standby that is down falls back to the primary."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.infra.settings import Settings
from tests.conftest import ADMIN_TOKEN, RunningApi
from tests.harness.services import RedisServer
from tests.harness.standby import ReplicatedPostgres, shared_pair
from tests.integration.helpers import BASE_TS, batch, device_auth, make_site, post_batch, readings

pytestmark = pytest.mark.slow

DB = f"emissions_replica_{os.getpid()}"
LAG = "replica-lag"


@pytest.fixture(scope="session")
async def pair() -> ReplicatedPostgres:
    replicated = shared_pair()
    await replicated.create_migrated(DB)
    return replicated


@pytest.fixture
async def client(
    pair: ReplicatedPostgres, redis_server: RedisServer
) -> AsyncIterator[httpx.AsyncClient]:
    """The API (in this process) writing to the primary, reading from the standby."""
    settings = Settings.from_env(
        {},
        database_url=pair.url(DB),
        read_database_url=pair.url(DB, pair.standby),
        redis_url=redis_server.url,
        log_json=True,
    )
    async with RunningApi(settings) as api:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as http:
            yield http


async def ingest_and_drain(
    client: httpx.AsyncClient, pair: ReplicatedPostgres, site: int, hour: int
) -> None:
    """Four readings in one hour, accepted on the primary and applied to its aggregates."""
    items = readings(4, start=BASE_TS + timedelta(hours=hour), kg=1.0)
    response = await post_batch(client, site, batch(items))
    assert response.status_code == 202, response.text
    assert LAG not in response.headers  # a write says nothing about replicas
    conn = await db.connect(pair.url(DB))
    try:
        await drain_batch(conn, limit=100, policy=RetryPolicy())
    finally:
        await conn.close()


async def readings_seen(client: httpx.AsyncClient, site: int) -> tuple[int, str | None]:
    response = await client.get(f"/v1/sites/{site}")
    assert response.status_code == 200, response.text
    return response.json()["reading_count"], response.headers.get(LAG)


async def wait_received(pair: ReplicatedPostgres) -> None:
    """Until the standby has received (not necessarily replayed) all the primary wrote."""
    primary = await asyncpg.connect(pair.primary.url())
    standby = await asyncpg.connect(pair.standby.url())
    try:
        target = await primary.fetchval("SELECT pg_current_wal_insert_lsn()")
        for _ in range(200):
            if await standby.fetchval("SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn", target):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the standby never received the primary's WAL")
    finally:
        await primary.close()
        await standby.close()


async def test_reads_come_from_the_standby_with_their_lag_and_from_the_primary_when_it_is_down(
    client: httpx.AsyncClient, pair: ReplicatedPostgres
) -> None:
    site = await make_site(client)
    await ingest_and_drain(client, pair, site, hour=0)
    await pair.wait_replayed()
    assert await readings_seen(client, site) == (4, "0")  # caught up: not stale at all

    control = await asyncpg.connect(pair.standby.url())
    await control.execute("SELECT pg_wal_replay_pause()")
    while await control.fetchval("SELECT pg_get_wal_replay_pause_state()") != "paused":
        await asyncio.sleep(0.01)
    try:
        await ingest_and_drain(client, pair, site, hour=1)
        await wait_received(pair)
        # Served by the standby, which has the WAL but has not replayed it: the old totals,
        # and a lag above 0 (the age of the last commit it replayed).
        seen, lag = await readings_seen(client, site)
        assert seen == 4
        assert lag is not None and float(lag) > 0
        window = {"from": BASE_TS.isoformat(), "to": (BASE_TS + timedelta(hours=3)).isoformat()}
        hourly = await client.get(f"/v1/sites/{site}/hourly", params=window)
        assert hourly.status_code == 200, hourly.text
        assert len(hourly.json()["hours"]) == 1  # the second hour is not on the standby yet
        assert float(hourly.headers[LAG]) > 0
        for path in ("/v1/ops/queue", "/v1/ops/outbox", "/v1/sites", "/v1/alerts"):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
            assert float(response.headers[LAG]) > 0, path
        # Device keys are checked on the primary: a revocation holds at once, replica or not.
        auth = await device_auth(client, site)
        keys = (await client.get("/v1/devices", params={"site_id": site})).json()
        for key in keys:
            assert (await client.delete(f"/v1/devices/{key['id']}")).status_code == 200
        late = await post_batch(client, site, batch(readings(1)), headers=auth)
        assert late.status_code == 401, late.text
    finally:
        await control.execute("SELECT pg_wal_replay_resume()")
        await control.close()
    await pair.wait_replayed()
    assert await readings_seen(client, site) == (8, "0")

    pair.standby.stop()
    try:
        # Written after the standby stopped: only the primary has it, and the read finds it.
        other = await make_site(client)
        await ingest_and_drain(client, pair, other, hour=2)
        assert await readings_seen(client, other) == (4, "0")
        response = await client.get("/v1/ops/queue")
        assert response.status_code == 200
        assert response.headers[LAG] == "0"
    finally:
        pair.standby.start()


async def test_without_a_read_url_reads_are_on_the_primary_and_say_nothing_of_lag(
    anon_client: httpx.AsyncClient,
) -> None:
    response = await anon_client.get("/v1/sites")
    assert response.status_code == 200
    assert LAG not in response.headers
