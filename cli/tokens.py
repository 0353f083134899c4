"""`emissions tokens create|revoke`: named operator tokens with a role (printed once)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from cli.common import CLI_ACTOR, with_conn
from domain.roles import DEFAULT_ROLE, ROLES
from service import operators
from service.infra.settings import Settings


def add_commands(sub: Any) -> None:
    tok = sub.add_parser("tokens", help="named operator tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    tc = tok.add_parser("create", help="create a token (viewer, operator or admin)")
    tc.add_argument("--name", required=True)
    tc.add_argument(
        "--role",
        choices=ROLES,
        default=DEFAULT_ROLE,
        help="viewer: reads; operator: + replays and acknowledgements; admin: everything"
        f" (default {DEFAULT_ROLE})",
    )
    tc.set_defaults(run=_create)
    tr = tok.add_parser("revoke", help="revoke a token")
    tr.add_argument("--name", required=True)
    tr.set_defaults(run=_revoke)


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        secret = await operators.create_operator_token(
            conn, name=args.name, role=args.role, actor=CLI_ACTOR
        )
        print(f"{args.role} token {args.name!r}:")
        print(secret)
        print("store it now: it is not shown again")
        return 0

    return await with_conn(settings, work)


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        if not await operators.revoke_operator_token(conn, name=args.name, actor=CLI_ACTOR):
            print(f"no token named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked token {args.name!r}")
        return 0

    return await with_conn(settings, work)
