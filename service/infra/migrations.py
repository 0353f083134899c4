"""Forward-only migrations: apply sql/migrations/NNNN_name.sql in order, each exactly once."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from service.infra.db import connect_hosts
from service.infra.errors import MigrationError
from service.infra.queries import SQL_DIR

MIGRATIONS_DIR = SQL_DIR / "migrations"
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
# Two-int advisory lock key: (namespace, purpose). Ingest uses the one-bigint form, so the
# key spaces cannot collide.
_LOCK = (0x656D69, 1)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, ordered by version; refuses gaps in naming and duplicates."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations have version {version:04d}")
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def _applied(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


def _check_edits(applied: dict[int, str], migrations: list[Migration]) -> list[Migration]:
    """The pending migrations; raises if an applied file changed or disappeared."""
    by_version = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"migration {version:04d} was applied but its file is missing")
        if migration.checksum != checksum:
            raise MigrationError(
                f"{version:04d}_{migration.name}.sql was edited after it was applied; "
                "migrations are forward-only: add a new file instead"
            )
    return [m for m in migrations if m.version not in applied]


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction. Returns what ran.

    A session advisory lock serialises concurrent runs: the second waits, then finds
    nothing pending.
    """
    migrations = discover(directory)
    await conn.execute("SELECT pg_advisory_lock($1, $2)", *_LOCK)
    try:
        await conn.execute(_CREATE_LEDGER)
        pending = _check_edits(await _applied(conn), migrations)
        done = []
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(f"{migration.version:04d}_{migration.name}")
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", *_LOCK)


async def verify(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Refuse to serve from a schema that is behind or edited: raise MigrationError."""
    pending = _check_edits(await _applied(conn), discover(directory))
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        raise MigrationError(f"pending migrations: {names}; run `emissions migrate`")


async def ensure_partitions(conn: asyncpg.Connection, *, months_ahead: int = 3) -> list[str]:
    """Create monthly measurement partitions from last month to months_ahead; returns new ones."""
    today = datetime.now(UTC).date()
    created = []
    for offset in range(-1, months_ahead + 1):
        month = _add_months(today.replace(day=1), offset)
        if await conn.fetchval("SELECT ensure_measurement_partition($1)", month):
            created.append(month.strftime("%Y-%m"))
    return created


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


async def create_database_if_missing(dsn: str, *, timeout_s: float = 5.0) -> bool:
    """Create the database named in dsn unless it exists (via the server's `postgres` db).

    A multi-host dsn is followed as everywhere else (db.connect_hosts): with
    target_session_attrs=read-write the database is created on the current primary.
    """
    parts = urlsplit(dsn)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        return False
    try:
        conn = await connect_hosts(dsn, timeout_s=timeout_s)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    admin = await connect_hosts(urlunsplit(parts._replace(path="/postgres")), timeout_s=timeout_s)
    try:
        quoted = await admin.fetchval("SELECT quote_ident($1)", name)
        await admin.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False
    finally:
        await admin.close()
    return True
