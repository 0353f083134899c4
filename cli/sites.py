"""`emissions sites list`: every site with its year-to-date against its limit."""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from cli.common import with_conn
from service import sites
from service.infra.settings import Settings


def add_commands(sub: Any) -> None:
    s = sub.add_parser("sites", help="sites").add_subparsers(dest="sites_command", required=True)
    sl = s.add_parser("list", help="sites with year-to-date against their limit")
    sl.set_defaults(run=_list)


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        after = 0
        while page := await sites.list_sites(conn, after=after, limit=500, factor=settings.gwp):
            for site in page:
                print(
                    f"{site.id:>6}  {site.name:<32} {site.year_kg:>14,.1f} kg"
                    f"  {site.percent_of_limit:>7.1f} % of {site.emission_limit_kg:,.0f}"
                    f"  {site.status}"
                )
            after = page[-1].id
        return 0

    return await with_conn(settings, work)
