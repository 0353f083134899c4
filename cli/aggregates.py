"""`emissions aggregates rebuild`: recompute buckets and totals from raw readings."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import CLI_ACTOR, with_conn
from service import aggregates
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    agg = sub.add_parser("aggregates", help="aggregate operations").add_subparsers(
        dest="aggregates_command", required=True
    )
    b = agg.add_parser("rebuild", help="recompute buckets and totals from raw data")
    b.add_argument("--site", type=int, help="only this site (default: every site)")
    b.set_defaults(run=_rebuild)


async def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        sites, buckets, entry = await aggregates.rebuild(conn, site_id=args.site, actor=CLI_ACTOR)
        log.info("rebuild", sites=sites, buckets=buckets, audit_id=entry.id)
        return 0

    return await with_conn(settings, work)
