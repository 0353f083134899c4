"""A worker process's identity and its heartbeat, which the queue page reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
import structlog

from service.infra import db, queries
from service.infra.errors import DatabaseUnavailable

log = structlog.get_logger("worker")


@dataclass
class WorkerState:
    """Per-process identity and the running count of applied events."""

    worker_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    drained: int = 0
    # What this worker is working on now ("drain (sweep)"; None: idle) and since when (epoch s),
    # written by the next heartbeat: the workers table's "current claim".
    claim: str | None = None
    claim_since: float | None = None
    # Called when a drain queued webhook deliveries (the process's delivery loop wakes up).
    wake_delivery: Callable[[], None] | None = None
    # Called when a drain applied events (the stream relay, with NATS_URL set, wakes up).
    wake_stream: Callable[[], None] | None = None


async def beat_forever(pool: asyncpg.Pool, state: WorkerState, *, every_s: float) -> None:
    """Record this worker as alive every `every_s`; a Postgres outage only skips beats."""
    query = queries.load("workers")["heartbeat"]
    while True:
        try:
            async with db.connection(pool) as conn:
                await conn.execute(
                    query,
                    state.worker_id,
                    socket.gethostname(),
                    os.getpid(),
                    state.drained,
                    state.claim,
                    state.claim_since,
                )
        except DatabaseUnavailable:
            log.warning("heartbeat_skipped", reason="postgres unreachable")
        await asyncio.sleep(every_s)


@contextlib.contextmanager
def working_on(state: WorkerState, claim: str) -> Iterator[None]:
    """Say what this worker is doing (its heartbeat reports it) until the block ends."""
    state.claim, state.claim_since = claim, time.time()
    try:
        yield
    finally:
        state.claim = state.claim_since = None
