"""Migrations: ordered, once each, refused when edited, safe under concurrent runners."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from service.infra import migrations
from service.infra.errors import MigrationError
from service.infra.migrations import MIGRATIONS_DIR
from tests.conftest import free_socket
from tests.harness.services import PostgresServer, RedisServer
from tests.integration.helpers import run_cli

_numbers = itertools.count()


@pytest.fixture
async def empty_db(pg_server: PostgresServer) -> AsyncIterator[str]:
    name = f"empty_{os.getpid()}_{next(_numbers)}"
    admin = await asyncpg.connect(pg_server.url)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    yield pg_server.url_for(name)
    admin = await asyncpg.connect(pg_server.url)
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def test_first_run_applies_all_and_second_run_is_a_noop(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        first = await migrations.migrate(conn)
        ledger = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
        second = await migrations.migrate(conn)
        assert first == [f"{m.version:04d}_{m.name}" for m in migrations.discover()]
        assert second == []
        assert await conn.fetch("SELECT * FROM schema_migrations ORDER BY version") == ledger
    finally:
        await conn.close()


async def test_concurrent_runs_apply_each_file_once(empty_db: str) -> None:
    conns = [await asyncpg.connect(empty_db) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.migrate(c) for c in conns))
        applied = sorted(name for result in results for name in result)
        assert applied == [f"{m.version:04d}_{m.name}" for m in migrations.discover()]
        versions = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert versions == len(migrations.discover())
    finally:
        for c in conns:
            await c.close()


async def test_edited_applied_file_is_refused(empty_db: str, tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "0999_extra.sql").write_text("CREATE TABLE extra (id int);\n")
    conn = await asyncpg.connect(empty_db)
    try:
        await migrations.migrate(conn, directory)
        (directory / "0999_extra.sql").write_text("CREATE TABLE extra (id bigint);\n")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrations.migrate(conn, directory)
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrations.verify(conn, directory)
    finally:
        await conn.close()


async def test_cli_refuses_an_edited_file_with_a_nonzero_exit(empty_db: str) -> None:
    conn = await asyncpg.connect(empty_db)
    try:
        await migrations.migrate(conn)
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    finally:
        await conn.close()
    done = await run_cli("migrate", env={"DATABASE_URL": empty_db, "LOG_JSON": "true"})
    assert done.returncode == 1
    assert "migrate_refused" in done.stdout


async def test_cli_creates_the_database_and_migrates(pg_server: PostgresServer) -> None:
    name = f"cli_{os.getpid()}_{next(_numbers)}"
    env = {"DATABASE_URL": pg_server.url_for(name), "LOG_JSON": "true"}
    try:
        for _ in range(2):
            done = await run_cli("migrate", env=env)
            assert done.returncode == 0, done.stdout + done.stderr
        conn = await asyncpg.connect(pg_server.url_for(name))
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        await conn.close()
        assert count == len(migrations.discover())
    finally:
        admin = await asyncpg.connect(pg_server.url)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_api_refuses_to_start_on_an_unmigrated_database(
    empty_db: str, redis_server: RedisServer
) -> None:
    with free_socket() as sock:
        port = str(sock.getsockname()[1])
    done = await run_cli(
        "serve", env={"DATABASE_URL": empty_db, "REDIS_URL": redis_server.url, "PORT": port}
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in migrations.discover())
    assert f"pending migrations: {names}" in output
    assert "run `emissions migrate`" in output


async def test_tokens_and_audit_rows_from_before_roles_are_admins(
    empty_db: str, tmp_path: Path
) -> None:
    before_roles = tmp_path / "migrations"
    before_roles.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0006":
            shutil.copy(path, before_roles)
    conn = await asyncpg.connect(empty_db)
    try:
        await migrations.migrate(conn, before_roles)
        await conn.execute(
            "INSERT INTO operator_tokens (name, token_hash) VALUES ('alice', '\\x01');"
            "INSERT INTO ops_audit (actor, action, params, affected) VALUES ('alice', 'x', '{}', 1)"
        )
        assert "0006_roles" in await migrations.migrate(conn)
        assert await conn.fetchval("SELECT role FROM operator_tokens") == "admin"
        assert await conn.fetchval("SELECT role FROM ops_audit") == "admin"
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE operator_tokens SET role = 'root'")
    finally:
        await conn.close()
