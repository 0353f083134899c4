"""`emissions`: the one command for every operational task."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg
import structlog

from service import migrate
from service.errors import MigrationError
from service.logs import configure_logging
from service.settings import Settings

log = structlog.get_logger("cli")


async def _migrate(settings: Settings, *, create_db: bool) -> int:
    if create_db and await migrate.create_database_if_missing(settings.database_url):
        log.info("database_created")
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate.migrate(conn)
        partitions = await migrate.ensure_partitions(conn)
    except MigrationError as exc:
        log.error("migrate_refused", reason=exc.detail)
        return 1
    finally:
        await conn.close()
    log.info("migrate_done", applied=applied, partitions_created=partitions)
    return 0


def _serve(settings: Settings, *, workers: int) -> int:
    import uvicorn  # the server is only needed by this command

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        access_log=False,  # the app logs one line per request itself
        log_level="warning",
        proxy_headers=True,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emissions", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("migrate", help="apply pending migrations and create partitions ahead")
    m.add_argument(
        "--no-create-db", action="store_true", help="fail if the database does not exist"
    )
    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings, create_db=not args.no_create_db))
    if args.command == "serve":
        return _serve(settings, workers=args.workers)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
