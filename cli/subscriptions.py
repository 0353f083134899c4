"""`emissions subscriptions create|list|disable`: webhook subscriptions (secret shown once)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import structlog

from cli.common import CLI_ACTOR, with_conn
from domain.events import EVENT_TYPES
from service import subscriptions
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    subs = sub.add_parser("subscriptions", help="webhook subscriptions").add_subparsers(
        dest="subscriptions_command", required=True
    )
    sc = subs.add_parser("create", help="a new subscription (its secret is printed once)")
    sc.add_argument("--url", required=True, help="the receiver, http(s)://...")
    sc.add_argument(
        "--event-type", action="append", required=True, help=f"repeatable: {', '.join(EVENT_TYPES)}"
    )
    sc.add_argument("--description", default="")
    sc.add_argument("--secret", help="your own whsec_... secret (default: generated)")
    sc.set_defaults(run=_create)
    sl = subs.add_parser("list", help="subscriptions and their delivery health")
    sl.add_argument("--all", action="store_true", help="disabled ones too")
    sl.set_defaults(run=_list)
    sd = subs.add_parser("disable", help="stop delivering to a subscription")
    sd.add_argument("id", type=int)
    sd.set_defaults(run=_disable)


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        try:
            sub, secret = await subscriptions.create(
                conn,
                url=args.url,
                event_types=args.event_type,
                description=args.description,
                secret=args.secret,
                actor=CLI_ACTOR,
                allowed=settings.webhook_networks,
            )
        except subscriptions.InvalidSubscription as exc:
            for error in exc.errors:
                log.error("subscription_refused", field=error.pointer, reason=error.detail)
            return 2
        # The secret goes to the operator's terminal only, never to the log.
        print(f"subscription {sub.id} to {sub.url} for {', '.join(sub.event_types)}")
        print(f"signing secret: {secret}")
        print("store it now: it is not shown again")
        return 0

    return await with_conn(settings, work)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        for sub in await subscriptions.list_all(conn, include_disabled=args.all):
            h = sub.health
            assert h is not None
            state = f"disabled {sub.disabled_at:%Y-%m-%d}" if sub.disabled_at else "live"
            print(
                f"{sub.id:>5}  {sub.url}  [{', '.join(sub.event_types)}]  {state}  "
                f"delivered/h {h.delivered_last_hour}  pending {h.pending}  "
                f"backoff {h.in_backoff}  dead {h.dead}"
                + (f"  last error: {h.last_error[:80]}" if h.last_error else "")
            )
        return 0

    return await with_conn(settings, work)


async def _disable(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        sub = await subscriptions.disable(conn, subscription_id=args.id, actor=CLI_ACTOR)
        print(f"disabled subscription {sub.id} ({sub.url})")
        return 0

    return await with_conn(settings, work)
