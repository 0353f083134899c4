"""`emissions worker`: arq, supervised so that a Redis outage never stops the draining."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from typing import Any

import structlog
import uvloop
from arq.worker import Worker, create_worker
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from service import drain, workers
from service.delivery import Deliverer
from service.infra import db
from service.infra.errors import DatabaseUnavailable
from service.infra.logs import configure_logging
from service.infra.settings import Settings
from service.workers import WorkerState
from worker.settings import WorkerSettings

log = structlog.get_logger("worker")
RETRY_S = 1.0


async def _run_arq(ctx: dict[str, Any], current: list[Worker]) -> None:
    # No connection retries inside arq (its default is 5, a second apart): while Redis is down,
    # supervise() drains from Postgres between attempts, which it can only do if arq gives up.
    redis_settings = dataclasses.replace(WorkerSettings.redis_settings, conn_retries=0)
    worker = create_worker(
        WorkerSettings,  # type: ignore[arg-type]
        ctx=ctx,
        handle_signals=False,
        redis_settings=redis_settings,
    )
    current[:] = [worker]
    try:
        await worker.async_run()
    finally:
        # Redis may be why we are here; close() also cancels the jobs it was running (their
        # transactions roll back), which surfaces as CancelledError from its gather().
        with contextlib.suppress(RedisError, OSError, asyncio.CancelledError):
            await worker.close()
        if worker._pool is not None:  # close() stopped early: release its Redis connections
            with contextlib.suppress(RedisError, OSError):
                await worker._pool.close(close_connection_pool=True)


async def supervise(settings: Settings) -> None:
    """Run arq; when Redis drops, drain straight from Postgres every second until it is back.

    The Postgres pool, heartbeat and counters belong to this loop, not to one arq run.
    SIGINT/SIGTERM cancel the current run: an in-flight drain transaction rolls back and its
    events stay pending for the next worker.
    """
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)
    pool = await db.create_pool(settings)
    state = WorkerState()
    beat = asyncio.create_task(workers.beat_forever(pool, state, every_s=settings.sweep_interval_s))
    # Webhook deliveries run beside arq, so they go on while Redis is down too.
    deliverer = Deliverer(pool, settings)
    state.wake_delivery = deliverer.wake
    delivering = asyncio.create_task(deliverer.run_forever())
    stopping = asyncio.Event()
    current: list[Worker] = []
    main = asyncio.current_task()

    def stop() -> None:
        stopping.set()
        assert main is not None
        main.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    ctx: dict[str, Any] = {"settings": settings, "pool": pool, "state": state}
    try:
        while not stopping.is_set():
            try:
                await _run_arq(ctx, current)
            except (RedisError, OSError) as exc:
                log.warning("redis_unreachable", error=str(exc), fallback="postgres sweep")
            with contextlib.suppress(DatabaseUnavailable):
                await drain.drain_until_idle(pool, settings, state, trigger="fallback")
            await asyncio.sleep(RETRY_S)
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
    finally:
        beat.cancel()
        delivering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivering
        await pool.close()
        log.info("worker_exited", drained=state.drained)


def run(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_json)
    # uvloop (as uvicorn uses for the API): its socket I/O is what a worker mostly does.
    uvloop.run(supervise(settings))
    return 0
