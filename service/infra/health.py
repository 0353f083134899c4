"""Cheap dependency probes for readiness."""

from __future__ import annotations

import asyncio

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
