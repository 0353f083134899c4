"""Guarantees 3-4 under faults: real Postgres, real Redis, real worker processes, exact totals."""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from service.aggregates import current_year
from tests.harness.services import PostgresServer, RedisServer
from tests.integration.helpers import batch, make_site, post_batch
from tests.integration.receiver import Receiver
from tests.integration.workers import (
    Reading,
    WorkerProcess,
    actual_totals,
    expected_totals,
    first_values,
    pending_events,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.slow

# Spans a new year, so the year total differs from the lifetime total.
START = datetime(2025, 12, 31, 21, 0, tzinfo=UTC)
STEP = timedelta(minutes=7)  # batches straddle hour boundaries

Spawn = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def clean_redis(redis_server: RedisServer) -> Iterator[None]:
    """No arq job or in-progress key of another test (e.g. a killed worker's) leaks in or out."""
    _flush(redis_server)
    yield
    _flush(redis_server)


def _flush(server: RedisServer) -> None:
    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(server.url) as client:
        client.flushdb()


@pytest.fixture
def spawn(db_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[Spawn]:
    """Make worker processes on the test database; all are killed at the end, logs printed."""
    made: list[WorkerProcess] = []

    def make(name: str = "worker", **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            database_url=db_url,
            redis_url=redis_server.url,
            log_dir=tmp_path,
            name=name,
            env=env,
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()
        print(worker.tail())  # shown by pytest only when the test failed


@pytest.fixture
async def observer(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A second plain connection, to look while the `conn` fixture holds a lock."""
    connection = await asyncpg.connect(db_url, server_settings={"timezone": "UTC"})
    yield connection
    await connection.close()


def new_readings(rng: random.Random, site_id: int, first_slot: int, n: int) -> list[Reading]:
    """n fresh readings at slots first_slot.., kg with at most 3 decimals (exact as numeric)."""
    return [
        (site_id, START + STEP * (first_slot + i), rng.randint(0, 50_000) / 1000) for i in range(n)
    ]


def body(items: list[Reading], device_id: str = "dev-1") -> dict[str, Any]:
    return batch([{"ts": ts.isoformat(), "methane_kg": kg} for _, ts, kg in items], device_id)


async def assert_all_processed_once(conn: asyncpg.Connection, *, events: int) -> None:
    rows = await conn.fetch(
        "SELECT processed_at, dead_at, attempts, last_error FROM outbox"
        " WHERE event_type = 'measurements.accepted'"
    )
    assert len(rows) == events
    assert all(r["processed_at"] is not None for r in rows)
    assert [r for r in rows if r["dead_at"] is not None or r["attempts"] != 0] == []


async def test_worker_killed_while_holding_a_claim_rolls_back_and_another_applies_it_once(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    observer: asyncpg.Connection,
    spawn: Spawn,
) -> None:
    rng = random.Random(1)
    site = await make_site(client)
    sent: list[Reading] = []
    for i in range(4):
        items = new_readings(rng, site, 10 * i, 10)
        response = await post_batch(client, site, body(items))
        assert response.status_code == 202
        assert response.json()["accepted"] == 10
        sent += items
    year = current_year()
    await conn.execute("INSERT INTO site_totals (site_id, year) VALUES ($1, $2)", site, year)

    # Hold the site's totals row: a drainer claims the events, then waits for this lock.
    lock = conn.transaction()
    await lock.start()
    try:
        await conn.execute("SELECT 1 FROM site_totals WHERE site_id = $1 FOR UPDATE", site)
        worker_a = spawn("worker-a")
        await worker_a.start()

        async def blocked_drainer() -> str | None:
            query: str | None = await observer.fetchval(
                """
                SELECT query FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND application_name = 'emissions-engine' AND wait_event_type = 'Lock'
                """
            )
            return query

        query: str = await wait_for(
            blocked_drainer, timeout=10, message="no drainer waits on the lock"
        )
        assert "site_totals" in query
        # Worker A's open transaction holds every event: a concurrent claim gets none of them.
        assert await pending_events(observer) == 4
        skip_locked = "SELECT id FROM outbox WHERE processed_at IS NULL FOR UPDATE SKIP LOCKED"
        assert await observer.fetch(skip_locked) == []

        assert await worker_a.kill() == -9
        worker_b = spawn("worker-b")
        await worker_b.start()
        await asyncio.sleep(1.5)  # B sweeps meanwhile: A's dead session still holds the events
        assert await pending_events(observer) == 4
        assert worker_b.events("drained") == []
    finally:
        await lock.rollback()

    await wait_drained(observer, timeout=15)
    await assert_all_processed_once(observer, events=4)
    assert await actual_totals(observer, year=year) == expected_totals(sent, year=year)
    assert worker_a.events("drained") == []
    assert worker_b.applied() == 4, worker_b.tail()


async def test_two_workers_under_steady_ingest_apply_every_event_exactly_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection, spawn: Spawn
) -> None:
    rng = random.Random(2)
    sites = [await make_site(client) for _ in range(5)]
    # Small claims: many short transactions, so the two workers' drains interleave more.
    workers = [spawn(name, DRAIN_BATCH_SIZE="4") for name in ("worker-1", "worker-2")]
    await asyncio.gather(*(w.start() for w in workers))
    sent: list[Reading] = []  # in the order the API acknowledged them
    stored: dict[int, list[Reading]] = {site: [] for site in sites}
    next_slot = dict.fromkeys(sites, 0)
    events = 0
    for round_no in range(8):
        plans = []  # (site, device, key, items, (accepted, duplicates, conflicts))
        for site in sites:
            # Two devices, interleaved windows: concurrent events of a site share hours.
            both = new_readings(rng, site, next_slot[site], 12)
            next_slot[site] += 12
            for device, fresh in (("dev-a", both[0::2]), ("dev-b", both[1::2])):
                earlier = rng.sample(stored[site], min(3, len(stored[site])))
                dups, clashes = (
                    earlier[:2],
                    [(s, ts, round(kg + 1, 3)) for s, ts, kg in earlier[2:]],
                )
                items = fresh + dups + clashes
                rng.shuffle(items)
                expect = (len(fresh), len(dups), len(clashes))
                plans.append((site, device, uuid.uuid4().hex, items, expect))
            if round_no > 0:  # a whole earlier batch again, under a new key: all duplicates
                again = stored[site][:6]
                plans.append((site, "dev-a", uuid.uuid4().hex, again, (0, 6, 0)))
        responses = await asyncio.gather(
            *(post_batch(client, s, body(items, d), key=k) for s, d, k, items, _ in plans)
        )
        for (_, _, _, items, expect), response in zip(plans, responses, strict=True):
            assert response.status_code == 202, response.text
            got = response.json()
            assert (got["accepted"], got["duplicates"], len(got["conflicts"])) == expect
            events += 1 if expect[0] else 0
            sent += items
        kept = first_values(sent)
        for site in sites:
            stored[site] = [(s, ts, kg) for (s, ts), kg in kept.items() if s == site]
        await asyncio.sleep(0.25)

    await wait_drained(conn, timeout=15)
    await assert_all_processed_once(conn, events=events)
    year = current_year()
    assert await actual_totals(conn, year=year) == expected_totals(sent, year=year)
    # Exactly once across processes: every event applied by one worker, none by both.
    applied = [w.applied() for w in workers]
    assert sum(applied) == events, applied
    # SIGTERM: a clean exit, and each process's own count agrees with its log lines.
    for worker, count in zip(workers, applied, strict=True):
        assert await worker.terminate() == 0, worker.tail()
        assert [line["drained"] for line in worker.events("worker_exited")] == [count]


async def _timed_post(client: httpx.AsyncClient, site: int, items: list[Reading]) -> float:
    started = time.perf_counter()
    response = await post_batch(client, site, body(items))
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(items)
    return elapsed


async def _subscribed_receiver(client: httpx.AsyncClient) -> Receiver:
    receiver = Receiver().start()
    _RECEIVERS.append(receiver)
    response = await client.post(
        "/v1/subscriptions",
        json={"url": receiver.url, "event_types": ["batch.accepted"]},
        headers={"Authorization": "Bearer dev-admin-token"},
    )
    assert response.status_code == 201, response.text
    return receiver


async def _all_delivered_once(conn: asyncpg.Connection, receiver: Receiver) -> None:
    """Every batch event reached the receiver; a repeat (at least once) carries a seen id."""
    rows = await conn.fetch("SELECT id FROM outbox WHERE event_type = 'measurements.accepted'")
    expected = {f"evt_{r['id']}" for r in rows}
    await wait_for(
        lambda: set(receiver.event_ids()) == expected,
        timeout=15,
        message=f"not delivered: {sorted(expected - set(receiver.event_ids()))}",
    )


_RECEIVERS: list[Receiver] = []


@pytest.fixture(autouse=True)
def _stop_receivers() -> Iterator[None]:
    yield
    while _RECEIVERS:
        _RECEIVERS.pop().stop()


async def test_redis_down_ingest_stays_fast_and_the_worker_drains_from_postgres(
    client: httpx.AsyncClient, conn: asyncpg.Connection, redis_server: RedisServer, spawn: Spawn
) -> None:
    if redis_server.kind != "local":
        pytest.skip(
            f"needs a Redis the harness can stop and start (this one is {redis_server.kind})"
        )
    rng = random.Random(3)
    sites = [await make_site(client) for _ in range(2)]
    receiver = await _subscribed_receiver(client)
    worker = spawn()
    await worker.start()
    sent: list[Reading] = []
    slot = 0

    def next_items(site: int) -> list[Reading]:
        nonlocal slot
        items = new_readings(rng, site, slot, 8)
        slot += 8
        sent.extend(items)
        return items

    before = [await _timed_post(client, sites[i % 2], next_items(sites[i % 2])) for i in range(10)]
    await wait_drained(conn, timeout=10)
    year = current_year()

    await asyncio.to_thread(redis_server.stop)
    try:
        during = []
        for i in range(20):  # steady ingest for ~2 s, longer than one fallback sweep interval
            during.append(await _timed_post(client, sites[i % 2], next_items(sites[i % 2])))
            await asyncio.sleep(0.1)
        # The doorbell rings in the background: a dead Redis costs a request nothing.
        assert max(during) < 1.0, during
        assert statistics.median(during) < statistics.median(before) + 0.2, (before, during)
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()["redis"]) == (200, "degraded")
        # The outbox is in Postgres: the worker drains it while Redis is still down, within a
        # few sweep intervals (not only after arq's own reconnect attempts have run out).
        await wait_drained(conn, timeout=3)
        assert await actual_totals(conn, year=year) == expected_totals(sent, year=year)
        assert worker.events("redis_unreachable"), worker.tail()
        assert worker.applied(trigger="fallback") > 0, worker.tail()
        assert worker.running
    finally:
        await asyncio.to_thread(redis_server.start)

    # Back on arq (a new run logs worker_started): later batches are drained by its jobs.
    await wait_for(
        lambda: len(worker.events("worker_started")) >= 2,
        timeout=10,
        message="arq never restarted after Redis came back",
    )
    arq_before = worker.applied(trigger="nudge") + worker.applied(trigger="sweep")
    for i in range(4):
        await _timed_post(client, sites[i % 2], next_items(sites[i % 2]))
    await wait_for(
        lambda: worker.applied(trigger="nudge") + worker.applied(trigger="sweep") > arq_before,
        timeout=15,
        message="arq never drained again after Redis came back",
    )
    await wait_drained(conn, timeout=10)
    assert await actual_totals(conn, year=year) == expected_totals(sent, year=year)
    await assert_all_processed_once(conn, events=34)
    # Webhooks went on through the outage (the delivery loop does not need Redis).
    await _all_delivered_once(conn, receiver)


async def test_postgres_restart_is_503_with_retry_after_and_nothing_is_lost(
    client: httpx.AsyncClient, db_url: str, pg_server: PostgresServer, spawn: Spawn
) -> None:
    if pg_server.kind != "local":
        pytest.skip(
            f"needs a Postgres the harness can stop and start (this one is {pg_server.kind})"
        )
    rng = random.Random(4)
    site = await make_site(client)
    receiver = await _subscribed_receiver(client)
    worker = spawn()
    await worker.start()
    first = new_readings(rng, site, 0, 12)
    assert (await post_batch(client, site, body(first))).status_code == 202
    outage = new_readings(rng, site, 12, 12)
    later = new_readings(rng, site, 24, 12)
    year = current_year()
    # Drained once before: the worker's pool holds connections that the restart will break.
    conn = await asyncpg.connect(db_url)
    try:
        await wait_drained(conn, timeout=10)
    finally:
        await conn.close()

    await asyncio.to_thread(pg_server.stop)
    try:
        response = await post_batch(client, site, body(outage), key="during-outage")
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/database-unavailable"
        assert int(response.headers["Retry-After"]) > 0
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()["postgres"]) == (503, "unreachable")
        await asyncio.sleep(2)  # the worker's sweeps and heartbeats fail meanwhile
        assert worker.running, worker.tail()
    finally:
        await asyncio.to_thread(pg_server.start)
    restarted = datetime.now(UTC)

    # The device retries with the same key: nothing of the 503 was stored, so it is new.
    retry = await post_batch(client, site, body(outage), key="during-outage")
    assert retry.status_code == 202, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert retry.json()["accepted"] == 12
    assert (await post_batch(client, site, body(later))).status_code == 202
    assert (await client.get("/ready")).status_code == 200

    conn = await asyncpg.connect(db_url, server_settings={"timezone": "UTC"})
    try:
        await wait_drained(conn, timeout=10)
        await assert_all_processed_once(conn, events=3)
        sent = first + outage + later
        assert await actual_totals(conn, year=year) == expected_totals(sent, year=year)
        await _all_delivered_once(conn, receiver)  # the delivery loop came back too

        async def heartbeat_resumed() -> bool:
            seen = await conn.fetchval("SELECT seen_at FROM workers WHERE pid = $1", worker.pid)
            return seen is not None and seen > restarted

        await wait_for(heartbeat_resumed, timeout=5, message="the worker's heartbeat stopped")
    finally:
        await conn.close()
    assert worker.running, worker.tail()
