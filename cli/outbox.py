"""`emissions outbox replay`: make events due again, or (dry run) say which would be."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import CLI_ACTOR, timestamp, with_conn
from service import outbox
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    outbox = sub.add_parser("outbox", help="outbox operations").add_subparsers(
        dest="outbox_command", required=True
    )
    r = outbox.add_parser("replay", help="make events due again (idempotent)")
    r.add_argument("--ids", type=int, nargs="+", help="event ids")
    r.add_argument("--site", type=int, help="events of this site")
    r.add_argument("--from", dest="start", type=timestamp, help="with --site: data from")
    r.add_argument("--to", dest="end", type=timestamp, help="with --site: data before")
    r.add_argument("--all-dead", action="store_true", help="every dead event (of --site)")
    r.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    r.set_defaults(run=_replay)


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    selection = outbox.ReplaySelection(
        event_ids=args.ids or None,
        site_id=args.site,
        start=args.start,
        end=args.end,
        only_dead=args.all_dead,
    )

    async def work(conn: asyncpg.Connection) -> int:
        try:
            ids, entry = await outbox.replay(
                conn, selection=selection, actor=CLI_ACTOR, dry_run=args.dry_run
            )
        except outbox.InvalidReplay as exc:
            log.error("replay_refused", reason="; ".join(e.detail for e in exc.errors))
            return 2
        log.info("replay", event_ids=ids, count=len(ids), dry_run=args.dry_run, audit_id=entry.id)
        return 0

    return await with_conn(settings, work)
