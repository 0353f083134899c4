"""What a worker process runs on, built by one function for arq and for the supervisor: the
pool, its identity, how it drains, the alert rules, its heartbeat and the delivery loop."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg

from service.alerts import AlertRules
from service.delivery import Deliverer
from service.drain import DrainConfig
from service.infra import db
from service.infra.settings import Settings
from service.queue_history import sample_forever
from service.stream import Relay
from service.workers import WorkerState, beat_forever


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    state: WorkerState
    drain: DrainConfig
    rules: AlertRules
    tasks: list[asyncio.Task[None]]

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        """Everything the jobs use, and the loops beside them (heartbeat, deliveries, queue
        samples and, with NATS_URL, the stream relay: they run whether Redis is up or not)."""
        # Waits out a failover under way; plans each statement afresh (db.WORKER_POOL_SETTINGS).
        pool = await db.open_pool(settings, server_settings=db.WORKER_POOL_SETTINGS)
        state = WorkerState()
        deliverer = Deliverer(pool, settings)
        state.wake_delivery = deliverer.wake
        tasks = [
            asyncio.create_task(beat_forever(pool, state, every_s=settings.sweep_interval_s)),
            asyncio.create_task(deliverer.run_forever()),
            asyncio.create_task(sample_forever(pool, every_s=settings.queue_sample_s)),
        ]
        if settings.nats_url is not None:
            relay = Relay(pool, settings)
            state.wake_stream = relay.wake
            tasks.append(asyncio.create_task(relay.run_forever()))
        drain = DrainConfig.from_settings(settings)
        return cls(settings, pool, state, drain, drain.rules, tasks)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        # The delivery loop records its finished sends on the way out; wait for it.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pool.close()
