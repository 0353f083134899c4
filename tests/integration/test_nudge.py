"""The doorbell: a commit enqueues one coalesced arq drain job, which the worker runs."""

from __future__ import annotations

import asyncio
import itertools
import time

import asyncpg
import httpx
from arq.connections import ArqRedis
from arq.worker import Worker

from service.infra.doorbell import DRAIN_JOB_ID, Doorbell
from service.infra.settings import Settings
from tests.integration.helpers import batch, make_site, post_batch, readings
from worker.runtime import Runtime
from worker.settings import arq_options


async def test_commits_ring_one_coalesced_job_that_an_arq_worker_drains(
    client: httpx.AsyncClient, conn: asyncpg.Connection, settings: Settings
) -> None:
    redis = ArqRedis.from_url(settings.redis_url)
    await redis.flushdb()
    site = await make_site(client)
    for i in range(5):
        await post_batch(client, site, batch(readings(3, kg=float(i))))
    await asyncio.sleep(0.2)  # rings run in the background after the response
    queued = await redis.zrange("arq:queue", 0, -1)
    assert queued == [f"{DRAIN_JOB_ID}".encode()]  # five commits, one job
    runtime = await Runtime.start(settings)
    try:
        options = arq_options(settings)
        worker = Worker(
            functions=options["functions"],
            on_startup=options["on_startup"],
            job_deserializer=options["job_deserializer"],
            redis_pool=redis,
            burst=True,
            poll_delay=0.05,
            handle_signals=False,
            keep_result=0,
            ctx={"runtime": runtime},
        )
        await worker.main()
        assert worker.jobs_complete == 1
        assert worker.jobs_failed == 0
    finally:
        await runtime.close()
        await redis.aclose()
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE processed_at IS NULL") == 0
    assert await conn.fetchval("SELECT readings FROM site_totals WHERE site_id = $1", site) == 3


async def test_ingest_answers_202_when_redis_is_unreachable(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    from tests.conftest import RunningApi

    nowhere = Settings.from_env(
        {}, database_url=settings.database_url, redis_url="redis://127.0.0.1:1/0"
    )
    admin = {"Authorization": "Bearer dev-admin-token"}
    async with (
        RunningApi(nowhere) as api,
        httpx.AsyncClient(base_url=api.url, headers=admin) as client,
    ):
        site = await make_site(client)
        response = await post_batch(client, site, batch(readings(2)))
        assert response.status_code == 202
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "degraded", "postgres": "ok", "redis": "degraded"}
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


class _RecordingRedis:
    """Stands in for ArqRedis: records when each enqueue started; the job is never queued
    (a worker takes it at once) unless `queued` says so."""

    def __init__(self, *, queued: bool = False) -> None:
        self.enqueued: list[float] = []
        self.asked = 0
        self.queued = queued

    async def exists(self, *keys: str) -> int:
        self.asked += 1
        await asyncio.sleep(0.001)  # a round trip
        return len(keys) if self.queued else 0

    async def enqueue_job(self, function: str, *, _job_id: str) -> None:
        self.enqueued.append(time.monotonic())
        await asyncio.sleep(0.005)  # a round trip


async def test_rings_coalesce_and_every_commit_is_followed_by_a_ring_within_the_interval() -> None:
    redis = _RecordingRedis()
    bell = Doorbell(redis, timeout_s=1.0, interval_s=0.05)  # type: ignore[arg-type]
    last_ring = 0.0
    for _ in range(40):  # a commit every 5 ms for 0.2 s
        bell.ring()
        last_ring = time.monotonic()
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)
    await bell.close()
    # One ring per interval at most, not one per commit...
    assert 2 <= len(redis.enqueued) <= 7, redis.enqueued
    gaps = [b - a for a, b in itertools.pairwise(redis.enqueued)]
    assert min(gaps) >= 0.045, gaps
    # ...and the last commit's ring starts within the interval (plus the ring in flight).
    assert last_ring <= redis.enqueued[-1] <= last_ring + 0.05 + 0.05


async def test_a_ring_that_finds_the_drain_job_queued_or_running_enqueues_nothing() -> None:
    redis = _RecordingRedis(queued=True)
    bell = Doorbell(redis, timeout_s=1.0, interval_s=0.01)  # type: ignore[arg-type]
    for _ in range(5):
        bell.ring()
        await asyncio.sleep(0.02)
    await bell.close()
    assert redis.asked == 5
    assert redis.enqueued == []
