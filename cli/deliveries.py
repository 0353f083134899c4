"""`emissions deliveries replay`: send webhook deliveries again (subscribers dedupe by id)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import CLI_ACTOR, with_conn
from service import subscriptions
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    deliveries = sub.add_parser("deliveries", help="webhook deliveries").add_subparsers(
        dest="deliveries_command", required=True
    )
    dre = deliveries.add_parser("replay", help="send deliveries again (subscribers dedupe by id)")
    dre.add_argument("--ids", type=int, nargs="+", help="delivery ids")
    dre.add_argument("--subscription", type=int, help="deliveries of this subscription")
    dre.add_argument("--all-dead", action="store_true", help="only dead ones (of --subscription)")
    dre.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    dre.set_defaults(run=_replay)


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        try:
            ids, entry = await subscriptions.replay(
                conn,
                delivery_ids=args.ids or None,
                subscription_id=args.subscription,
                only_dead=args.all_dead,
                actor=CLI_ACTOR,
                dry_run=args.dry_run,
            )
        except subscriptions.InvalidReplay as exc:
            log.error("replay_refused", reason="; ".join(e.detail for e in exc.errors))
            return 2
        log.info(
            "deliveries_replay",
            delivery_ids=ids,
            count=len(ids),
            dry_run=args.dry_run,
            audit_id=entry.id,
        )
        return 0

    return await with_conn(settings, work)
