"""`emissions migrate`: create the database if missing, apply migrations, partitions ahead."""

from __future__ import annotations

import argparse
from typing import Any

import structlog

from service.infra import db, migrations
from service.infra.errors import MigrationError
from service.infra.settings import Settings

log = structlog.get_logger("cli")


def add_commands(sub: Any) -> None:
    m = sub.add_parser("migrate", help="apply pending migrations, create partitions ahead")
    m.add_argument("--no-create-db", action="store_true", help="fail if the database is missing")
    m.set_defaults(run=_migrate)


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    url, timeout_s = settings.database_url, settings.db_connect_timeout_s
    if not args.no_create_db and await migrations.create_database_if_missing(
        url, timeout_s=timeout_s
    ):
        log.info("database_created")
    conn = await db.connect_hosts(url, timeout_s=timeout_s)
    try:
        applied = await migrations.migrate(conn)
        partitions = await migrations.ensure_partitions(conn)
    except MigrationError as exc:
        log.error("migrate_refused", reason=exc.detail)
        return 1
    finally:
        await conn.close()
    log.info("migrate_done", applied=applied, partitions_created=partitions)
    return 0
