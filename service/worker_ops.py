"""What a worker process does, independent of arq: drain until idle, and report liveness."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import structlog

from service.drain import DrainReport, RetryPolicy, drain_batch
from service.infra import db, metrics, queries
from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings

log = structlog.get_logger("worker")


@dataclass
class WorkerState:
    """Per-process identity and counters, kept in the arq ctx."""

    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    drained: int = 0
    # Called when a drain queued webhook deliveries (the process's delivery loop wakes up).
    wake_delivery: Callable[[], None] | None = None


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.drain_max_attempts,
        base_s=settings.drain_backoff_base_s,
        cap_s=settings.drain_backoff_cap_s,
    )


async def drain_until_idle(
    pool: asyncpg.Pool, settings: Settings, state: WorkerState, *, trigger: str
) -> DrainReport:
    """Drain claim after claim until a claim comes back short or the time budget is spent.

    One call drains many events, so arq's per-job overhead never bounds throughput.
    """
    started = time.perf_counter()
    total = DrainReport()
    policy = retry_policy(settings)
    while True:
        async with db.connection(pool) as conn:
            report = await drain_batch(conn, limit=settings.drain_batch_size, policy=policy)
        total.add(report)
        if report.claimed < settings.drain_batch_size and not report.emitted:
            break  # idle; events this claim wrote (alerts, restatements) are drained next
        if time.perf_counter() - started > settings.drain_budget_s:
            break
    state.drained += total.applied
    if total.deliveries and state.wake_delivery is not None:
        state.wake_delivery()
    if total.claimed:
        metrics.DRAIN_BATCH.observe(total.applied)
        metrics.DRAIN_SECONDS.observe(time.perf_counter() - started)
        metrics.APPLIED.inc(total.applied)
        metrics.DEAD_LETTERED.inc(total.dead)
        log.info(
            "drained",
            trigger=trigger,
            events=total.applied,
            readings=total.readings,
            failed=total.failed,
            dead_lettered=total.dead,
            notices=total.notices,
            deliveries_queued=total.deliveries,
            sites=total.sites,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            request_ids=total.request_ids,
        )
    return total


async def beat_forever(pool: asyncpg.Pool, state: WorkerState, *, every_s: float) -> None:
    """Record this worker as alive every `every_s`; a Postgres outage only skips beats."""
    query = queries.load("drain")["heartbeat"]
    while True:
        try:
            async with db.connection(pool) as conn:
                await conn.execute(
                    query, state.worker_id, socket.gethostname(), os.getpid(), state.drained
                )
        except DatabaseUnavailable:
            log.warning("heartbeat_skipped", reason="postgres unreachable")
        await asyncio.sleep(every_s)
