"""Create and drop test databases on a harness Postgres (one place for the admin SQL)."""

from __future__ import annotations

import asyncpg

from tests.harness.services import PostgresServer


async def create_database(pg: PostgresServer, name: str, *, template: str | None = None) -> str:
    """A fresh database (replacing any of that name), cloned from template if given; its URL."""
    admin = await asyncpg.connect(pg.url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        clone = f" TEMPLATE {template}" if template else ""
        await admin.execute(f"CREATE DATABASE {name}{clone}")
    finally:
        await admin.close()
    return pg.url_for(name)


async def drop_database(pg: PostgresServer, name: str) -> None:
    admin = await asyncpg.connect(pg.url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
