"""Cheap dependency probes for readiness, and their cached answer."""

from __future__ import annotations

import asyncio
import math
import time

import asyncpg
import redis.asyncio as aioredis

from service.infra.db import CONNECTION_ERRORS

PROBE_TIMEOUT_S = 1.0
_UNREACHABLE: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.InterfaceError)


async def postgres(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except _UNREACHABLE:
        return False
    return True


async def redis(client: aioredis.Redis) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await client.ping()
    except (OSError, aioredis.RedisError, TimeoutError):
        return False
    return True


class Readiness:
    """The probes' answer, at most `ttl_s` old: one probe round runs at a time and callers in
    between share its answer, so /ready cannot be used to load Postgres."""

    def __init__(self, pool: asyncpg.Pool, client: aioredis.Redis, *, ttl_s: float) -> None:
        self.pool = pool
        self.client = client
        self.ttl_s = ttl_s
        self._at = -math.inf
        self._last = (False, False)
        self._lock = asyncio.Lock()
        self.rounds = 0

    async def check(self) -> tuple[bool, bool]:
        """(postgres reachable, redis reachable)."""
        if time.monotonic() - self._at < self.ttl_s:
            return self._last
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:  # nobody refreshed it meanwhile
                self._last = await asyncio.gather(postgres(self.pool), redis(self.client))
                self._at = time.monotonic()
                self.rounds += 1
        return self._last
