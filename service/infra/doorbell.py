"""The doorbell: after a commit, ask the workers to drain. Never blocks or fails a request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import structlog
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio import ConnectionPool

DRAIN_JOB = "drain"
# A fixed job id: while one drain job is queued, further nudges coalesce into it.
DRAIN_JOB_ID = "drain:nudge"
_DRAIN_JOB_KEY = job_key_prefix + DRAIN_JOB_ID
log = structlog.get_logger("nudge")


def encode_job(data: dict[str, Any]) -> bytes:
    """arq's job (and result) records as JSON; anything JSON cannot hold becomes its text."""
    return msgspec.json.encode(data, enc_hook=str)


def decode_job(raw: bytes) -> dict[str, Any]:
    """A job record is data, never code: JSON only, so a pickle pushed into Redis by anyone
    who can reach it is refused (arq fails that job) instead of run."""
    return msgspec.json.decode(raw, type=dict[str, Any])


def doorbell_redis(url: str, *, timeout_s: float) -> ArqRedis:
    """The API's Redis client for ringing: short timeouts, jobs as JSON."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    return ArqRedis(pool, job_serializer=encode_job, job_deserializer=decode_job)


class Doorbell:
    """Rings in the background, one ring in flight at a time; a ring during one is remembered.

    Rings start at most every `interval_s`: at hundreds of commits per second a ring per
    commit was three Redis round trips each, and all but the first found the fixed-id job
    already queued. A commit is still followed by a ring that starts within `interval_s`
    (plus one ring in flight).

    A ring first asks whether the drain job is queued or running (one round trip), which it
    is most of the time under load; only if not does it enqueue it (arq's enqueue_job: three
    more, the first of which asks the same). Either way a ring that finds the job there does
    nothing, as enqueue_job would: the job in progress drains until the outbox is empty.

    After a failure (Redis down) it stays quiet for `quiet_s`: the sweep drains meanwhile, and
    requests do not pay for connection attempts that will fail.
    """

    def __init__(
        self,
        redis: ArqRedis,
        *,
        timeout_s: float,
        quiet_s: float = 1.0,
        interval_s: float = 0.02,
    ) -> None:
        self.redis = redis
        self.timeout_s = timeout_s
        self.quiet_s = quiet_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._quiet_until = 0.0
        self._next_at = 0.0

    def ring(self) -> None:
        if time.monotonic() < self._quiet_until:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._ring())

    async def _ring(self) -> None:
        while True:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # rings meanwhile are covered by the one below
            self._again = False
            self._next_at = time.monotonic() + self.interval_s
            try:
                async with asyncio.timeout(self.timeout_s):
                    if not await self.redis.exists(_DRAIN_JOB_KEY):
                        await self.redis.enqueue_job(DRAIN_JOB, _job_id=DRAIN_JOB_ID)
            except Exception as exc:
                self._quiet_until = time.monotonic() + self.quiet_s
                log.warning("nudge_failed", error=f"{type(exc).__name__}: {exc}")
                return
            if not self._again:
                return

    async def close(self) -> None:
        if self._task is not None:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self._task
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
