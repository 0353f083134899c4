"""`emissions maintain`: partitions ahead, and retention of events, deliveries and keys."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import with_conn
from service import maintenance
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    mt = sub.add_parser("maintain", help="partitions ahead, outbox and key retention")
    mt.set_defaults(run=_maintain)


async def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        done = await maintenance.maintain(
            conn,
            outbox_days=settings.outbox_retention_days,
            history_days=settings.queue_history_days,
        )
        log.info("maintenance", **done)
        return 0

    return await with_conn(settings, work)
