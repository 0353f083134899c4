"""Fixtures on real services: a Postgres and a Redis for the session, a fresh database per test
(cloned from a migrated template), and the real API served over HTTP on a free port."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from api.app import create_app
from service.infra import db, migrations
from service.infra.settings import Settings
from tests.harness.databases import create_database, drop_database
from tests.harness.services import PostgresServer, RedisServer, start_postgres, start_redis

# Per process: test sessions running side by side on one server never drop each other's.
TEMPLATE = f"emissions_template_{os.getpid()}"
_db_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.close()


@pytest.fixture(scope="session")
async def template_db(pg_server: PostgresServer) -> AsyncIterator[str]:
    """A database with every migration applied; tests clone it (fast: a file copy)."""
    conn = await asyncpg.connect(await create_database(pg_server, TEMPLATE))
    try:
        await migrations.migrate(conn)
        await migrations.ensure_partitions(conn)
    finally:
        await conn.close()
    yield TEMPLATE
    await drop_database(pg_server, TEMPLATE)


@pytest.fixture
async def db_url(pg_server: PostgresServer, template_db: str) -> AsyncIterator[str]:
    name = f"test_{os.getpid()}_{next(_db_numbers)}"
    yield await create_database(pg_server, name, template=template_db)
    await drop_database(pg_server, name)


@pytest.fixture
def settings(db_url: str, redis_server: RedisServer) -> Settings:
    return Settings.from_env({}, database_url=db_url, redis_url=redis_server.url, log_json=True)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, for arranging and asserting."""
    connection = await db.connect(db_url)
    yield connection
    await connection.close()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class RunningApi:
    """The real app under uvicorn in this event loop, on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.sock = free_socket()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(settings), log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> RunningApi:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:
            if self.task.done():
                try:
                    self.task.result()
                except SystemExit as exc:  # uvicorn exits when the lifespan startup fails
                    raise RuntimeError("the API failed to start (see the log)") from exc
                raise RuntimeError("the API failed to start (see the log)")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[RunningApi]:
    async with RunningApi(settings) as running:
        yield running


ADMIN_TOKEN = "dev-admin-token"  # the development default of ADMIN_TOKENS (operator "dev")


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client (admin token by default); device requests set their own key."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=api.url, timeout=30, headers=headers) as http:
        yield http


@pytest.fixture
async def anon_client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    """A client without any credentials."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        yield http
