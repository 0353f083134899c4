"""`emissions devices create|list|revoke`: device keys (a new key is printed once)."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from cli.common import CLI_ACTOR, with_conn
from service import devices
from service.infra.settings import Settings


def add_commands(sub: Any) -> None:
    dev = sub.add_parser("devices", help="device keys").add_subparsers(
        dest="devices_command", required=True
    )
    dc = dev.add_parser("create", help="a new key (printed once)")
    dc.add_argument("--site", type=int, action="append", required=True, help="repeatable")
    dc.add_argument("--device-id", required=True, help="the device this key belongs to")
    dc.add_argument("--name", help="a label for the key")
    dc.set_defaults(run=_create)
    dl = dev.add_parser("list", help="keys (never the secrets)")
    dl.add_argument("--site", type=int)
    dl.set_defaults(run=_list)
    dr = dev.add_parser("revoke", help="revoke a key by id")
    dr.add_argument("id", type=int)
    dr.set_defaults(run=_revoke)


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        key, secret = await devices.create_device_key(
            conn, device_id=args.device_id, site_ids=args.site, name=args.name, actor=CLI_ACTOR
        )
        # The one place a secret is printed: to the operator's terminal, never to the log.
        print(f"device key for {key.device_id} (id {key.id}, sites {key.site_ids}):")
        print(secret)
        print("store it now: it is not shown again")
        return 0

    return await with_conn(settings, work)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        for key in await devices.list_device_keys(conn, site_id=args.site):
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            print(
                f"{key.id:>6}  {key.device_id:<24} {key.key_prefix}…  sites {key.site_ids}"
                f"  {state}  {key.name or ''}"
            )
        return 0

    return await with_conn(settings, work)


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        key = await devices.revoke_device_key(conn, key_id=args.id, actor=CLI_ACTOR)
        print(f"revoked key {key.id} of {key.device_id}")
        return 0

    return await with_conn(settings, work)
