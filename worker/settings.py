"""arq WorkerSettings: `arq worker.settings.WorkerSettings` or `emissions worker`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from arq import cron, func
from arq.connections import RedisSettings

from service import alerts, workers
from service.delivery import Deliverer
from service.infra import db
from service.infra.doorbell import DRAIN_JOB
from service.infra.logs import configure_logging
from service.infra.settings import Settings
from service.workers import WorkerState
from worker import jobs

_settings = Settings.from_env()
log = structlog.get_logger("worker")


async def startup(ctx: dict[str, Any]) -> None:
    """Resources for the jobs. `emissions worker` passes its own (they outlive a Redis outage)."""
    settings: Settings = ctx.setdefault("settings", _settings)
    configure_logging(settings.log_level, settings.log_json)
    alerts.configure(alerts.rules_from(settings))
    if "pool" not in ctx:
        ctx["pool"] = await db.create_pool(settings)
        ctx["owns_pool"] = True
        ctx["state"] = WorkerState()
        ctx["heartbeat"] = asyncio.create_task(
            workers.beat_forever(ctx["pool"], ctx["state"], every_s=settings.sweep_interval_s)
        )
        deliverer = Deliverer(ctx["pool"], settings)
        ctx["state"].wake_delivery = deliverer.wake
        ctx["delivering"] = asyncio.create_task(deliverer.run_forever())
    log.info("worker_started", worker_id=ctx["state"].worker_id)


async def shutdown(ctx: dict[str, Any]) -> None:
    if ctx.pop("owns_pool", False):
        ctx.pop("heartbeat").cancel()
        delivering = ctx.pop("delivering")
        delivering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivering
        await ctx.pop("pool").close()
    log.info("worker_stopped")


class WorkerSettings:
    functions = (func(jobs.drain, name=DRAIN_JOB, keep_result=0, max_tries=1),)
    cron_jobs = (
        cron(
            jobs.sweep,
            name="sweep",
            second=set(range(0, 60, _settings.sweep_interval_s)),
            run_at_startup=True,
            keep_result=0,
            max_tries=1,
        ),
        cron(jobs.check_stale, name="check_stale", second=30, run_at_startup=True, max_tries=1),
        cron(jobs.maintain, name="maintain", minute=7, second=0, run_at_startup=True, max_tries=1),
    )
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(_settings.redis_url)
    max_jobs = _settings.worker_max_jobs
    # arq polls Redis for jobs; its 0.5 s default would add ~250 ms median lag to every nudge.
    poll_delay = _settings.worker_poll_delay_s
    keep_result = 0
    # Our jobs end their own loops within drain_budget_s; this only catches a stuck job. It also
    # bounds how long a SIGKILLed worker's in-progress key silences the nudges (timeout + 10 s);
    # the sweep drains meanwhile.
    job_timeout = 30
    health_check_interval = 5
