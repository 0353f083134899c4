"""`emissions worker`: arq, supervised so that a Redis outage never stops the draining."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
import uvloop
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from service.drain import drain_until_idle
from service.infra import metrics
from service.infra.doorbell import decode_job, encode_job
from service.infra.errors import DatabaseUnavailable
from service.infra.logs import configure_logging
from service.infra.settings import Settings
from service.workers import working_on
from worker.runtime import Runtime
from worker.settings import arq_options

log = structlog.get_logger("worker")
RETRY_S = 1.0


def redis_settings(url: str) -> RedisSettings:
    """arq's settings for REDIS_URL, with a percent-encoded user or password decoded (arq's
    from_dsn passes them on still encoded, so 'p%40ss' would be sent as is)."""
    settings = RedisSettings.from_dsn(url)
    parts = urlsplit(url)
    settings.username = unquote(parts.username) if parts.username else None
    settings.password = unquote(parts.password) if parts.password else None
    # No connection retries inside arq (its default is 5, a second apart): while Redis is down,
    # supervise() drains from Postgres between attempts, which it can only do if arq gives up.
    settings.conn_retries = 0
    return settings


async def _run_arq(runtime: Runtime) -> None:
    redis = await create_pool(
        redis_settings(runtime.settings.redis_url),
        job_serializer=encode_job,
        job_deserializer=decode_job,
    )
    worker = Worker(
        **arq_options(runtime.settings),
        redis_pool=redis,
        ctx={"runtime": runtime},
        handle_signals=False,
    )
    try:
        await worker.async_run()
    finally:
        # Redis may be why we are here; close() also cancels the jobs it was running (their
        # transactions roll back), which surfaces as CancelledError from its gather().
        with contextlib.suppress(RedisError, OSError, asyncio.CancelledError):
            await worker.close()
        # A cancelled job's result is written by a task arq shields from the cancellation:
        # let such leftovers end before their Redis connections close under them.
        ours = {asyncio.current_task(), *runtime.tasks}
        await _settle({t for t in asyncio.all_tasks() if t not in ours}, timeout_s=2.0)
        # Ours to close: close() stops before closing it when Redis is gone.
        with contextlib.suppress(RedisError, OSError):
            await redis.close(close_connection_pool=True)


async def _settle(tasks: set[asyncio.Task[Any]], *, timeout_s: float) -> None:
    """Wait up to timeout_s for tasks to end, cancel the rest; their outcomes are taken here
    (arq logs a job's failure itself), so none is reported as an unretrieved exception."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    for task in tasks:
        task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def supervise(settings: Settings) -> None:
    """Run arq; when Redis drops, drain straight from Postgres every second until it is back.

    The runtime (pool, heartbeat, deliveries, counters) belongs to this loop, not to one arq
    run. The first SIGINT/SIGTERM cancels the current run: an in-flight drain transaction
    rolls back and its events stay pending for the next worker; later signals only wait for
    that shutdown to finish.
    """
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host, registry=metrics.WORKER)
    runtime = await Runtime.start(settings)
    stopping = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None

    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop() -> None:
        stopping.set()
        main.cancel()
        # Later signals find nothing to interrupt: ignored by the OS from now on (also after
        # the loop closes, which would otherwise restore the default handlers mid-exit).
        # (Not loop.remove_signal_handler: it restores Python's default SIGINT handler, which
        # turns a signal already received but not yet handled into a KeyboardInterrupt.)
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        log.info("worker_stopping", note="further SIGINT/SIGTERM are ignored until it exits")

    for sig in signals:
        loop.add_signal_handler(sig, stop)
    try:
        while not stopping.is_set():
            try:
                await _run_arq(runtime)
            except (RedisError, OSError) as exc:
                log.warning("redis_unreachable", error=str(exc), fallback="postgres sweep")
            with (
                contextlib.suppress(DatabaseUnavailable),
                working_on(runtime.state, "drain (fallback)"),
            ):
                await drain_until_idle(
                    runtime.pool, runtime.drain, runtime.state, trigger="fallback"
                )
            await asyncio.sleep(RETRY_S)
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
    finally:
        await runtime.close()
        log.info("worker_exited", drained=runtime.state.drained)


def run(settings: Settings) -> int:
    settings.check_production()  # no development secrets in production
    configure_logging(settings.log_level, settings.log_json)
    # uvloop (as uvicorn uses for the API): its socket I/O is what a worker mostly does.
    try:
        uvloop.run(supervise(settings))
    finally:
        # Closing the loop restored the default handlers: nothing is left to interrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
    return 0
