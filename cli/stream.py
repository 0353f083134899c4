"""`emissions stream replay`: publish relayed events to the stream again, or (dry run) say which."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import CLI_ACTOR, timestamp, with_conn
from service import stream_replay
from service.infra.errors import InvalidInput
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    stream = sub.add_parser("stream", help="the NATS JetStream relay").add_subparsers(
        dest="stream_command", required=True
    )
    r = stream.add_parser(
        "replay",
        help="publish events created in [--from, --to) to the stream again (a worker with"
        " NATS_URL relays them); for consumers whose stream retention has passed",
    )
    r.add_argument("--from", dest="start", type=timestamp, required=True, help="events from")
    r.add_argument("--to", dest="end", type=timestamp, required=True, help="events before")
    r.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    r.set_defaults(run=_replay)


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        try:
            ids, entry = await stream_replay.replay(
                conn, start=args.start, end=args.end, actor=CLI_ACTOR, dry_run=args.dry_run
            )
        except InvalidInput as exc:
            log.error("replay_refused", reason="; ".join(e.detail for e in exc.errors))
            return 2
        log.info(
            "stream_replay", event_ids=ids, count=len(ids), dry_run=args.dry_run, audit_id=entry.id
        )
        return 0

    return await with_conn(settings, work)
