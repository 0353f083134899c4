"""Self-test of tests.harness.services: real servers come up, serve, stop and come back."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

from tests.harness.services import (
    PostgresServer,
    RedisServer,
    UnsupportedControlError,
    start_postgres,
    start_redis,
)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
def rds() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.close()


def _controllable(server: PostgresServer | RedisServer) -> None:
    if server.kind == "env":
        pytest.skip("server comes from an env URL; the harness cannot stop/start it")


def test_local_servers_avoid_the_system_ports(pg: PostgresServer, rds: RedisServer) -> None:
    if pg.kind == "local":
        assert pg.url.startswith("postgresql://postgres@127.0.0.1:")
        assert urlsplit(pg.url).port not in (None, 5432)
    if rds.kind == "local":
        assert (rds.host, rds.url) == ("127.0.0.1", f"redis://127.0.0.1:{rds.port}/0")
        assert rds.port != 6379


async def test_postgres_serves_queries_and_creates_databases(pg: PostgresServer) -> None:
    dbname = f"harness_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg.url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()

    other = await asyncpg.connect(pg.url_for(dbname))
    try:
        assert await other.fetchval("SELECT current_database()") == dbname
    finally:
        await other.close()

    conn = await asyncpg.connect(pg.url)
    try:
        await conn.execute(f'DROP DATABASE "{dbname}"')
    finally:
        await conn.close()


def test_redis_answers_ping(rds: RedisServer) -> None:
    with redis.Redis.from_url(rds.url) as client:
        assert client.ping() is True


def test_redis_stop_refuses_connections_and_start_restores_same_port(rds: RedisServer) -> None:
    _controllable(rds)
    with redis.Redis.from_url(rds.url) as client:
        client.set("harness:survives", "yes")
    port = rds.port

    rds.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection((rds.host, port), 2):
        pass
    with redis.Redis.from_url(rds.url) as client, pytest.raises(redis.ConnectionError):
        client.ping()

    rds.start()
    assert rds.port == port
    with redis.Redis.from_url(rds.url) as client:
        assert client.ping() is True
        assert client.get("harness:survives") == b"yes"


async def test_postgres_stop_start_keeps_port_and_data(pg: PostgresServer) -> None:
    _controllable(pg)
    table = f"harness_{uuid.uuid4().hex[:12]}"
    url = pg.url
    conn = await asyncpg.connect(pg.url)
    try:
        await conn.execute(f"CREATE TABLE {table} (v text)")
        await conn.execute(f"INSERT INTO {table} VALUES ('before stop')")
    finally:
        await conn.close()

    pg.stop()
    with pytest.raises(OSError):
        await asyncpg.connect(pg.url, timeout=2)

    pg.start()
    assert pg.url == url
    conn = await asyncpg.connect(pg.url)
    try:
        assert await conn.fetchval(f"SELECT v FROM {table}") == "before stop"
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


def test_env_servers_refuse_stop(monkeypatch: pytest.MonkeyPatch, pg: PostgresServer) -> None:
    monkeypatch.setenv("TEST_DATABASE_URL", pg.url)
    borrowed = start_postgres()
    assert borrowed.kind == "env"
    assert borrowed.url == pg.url
    with pytest.raises(UnsupportedControlError):
        borrowed.stop()
    borrowed.close()  # a no-op: the server belongs to someone else
    parts = urlsplit(pg.url)
    with socket.create_connection((parts.hostname or "localhost", parts.port or 5432), 2):
        pass
