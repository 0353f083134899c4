"""What every command shares: the audit actor, a connection per command, argument types."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg

from domain.roles import Actor
from service.infra import db
from service.infra.settings import Settings

# Whoever can run the CLI reaches the database itself: it acts as an admin, audited as `cli`.
CLI_ACTOR = Actor("cli", "admin")


async def with_conn(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[int]]
) -> int:
    conn = await db.connect(settings.database_url, timeout_s=settings.db_connect_timeout_s)
    try:
        return await work(conn)
    finally:
        await conn.close()


def timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs an explicit UTC offset, e.g. 2026-01-01T00:00Z")
    return value
