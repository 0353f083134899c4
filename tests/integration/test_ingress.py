"""Ingress a slow or hostile client cannot hold (issue 13 item 3), on real servers: headers and
bodies have deadlines, idle connections close, header count and size are capped, one device
cannot fill the API, made-up tokens cost no database round trip, /ready is cached, and only
/health escapes load shedding."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.context import RequestContext
from service.infra.settings import Settings
from tests.conftest import RunningApi, free_socket
from tests.harness.services import PostgresServer
from tests.integration.helpers import batch, device_key, make_site, readings

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer dev-admin-token"}
pytestmark = pytest.mark.slow


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`emissions serve` as a real process (our uvicorn protocol), with short deadlines."""
    with free_socket() as sock:
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PORT": str(port),
        "HEADER_TIMEOUT_S": "1",
        "BODY_READ_TIMEOUT_S": "1",
        "KEEP_ALIVE_S": "1",
        "LOG_JSON": "true",
    }
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def _read_until_closed(reader: asyncio.StreamReader, limit_s: float) -> tuple[bytes, float]:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), timeout=limit_s)  # read() ends at EOF
    return data, time.monotonic() - started


async def test_headers_that_never_end_get_408_and_the_connection_closes(
    served: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(b"GET /v1/sites HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    data, took = await _read_until_closed(reader, limit_s=5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert b"/problems/header-timeout" in data
    assert took < 3


async def test_a_connection_that_sends_nothing_is_closed(served: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*served)
    data, took = await _read_until_closed(reader, limit_s=5)
    writer.close()
    assert took < 3
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


async def test_a_body_that_stalls_after_the_headers_is_cut_off_in_seconds(
    served: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(
        b"POST /v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-admin-token\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": '
    )
    await writer.drain()
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert b"application/problem+json" in head
    assert time.monotonic() - started < 3


async def test_a_client_that_disconnects_mid_body_is_its_own_fault_not_a_500(
    served: tuple[str, int], tmp_path: Path, conn: asyncpg.Connection
) -> None:
    """A device that loses its link mid-upload is logged as a 400 client-disconnected, not as
    an unhandled error with a traceback and a 500 that error-rate alerts would count; nothing
    is written."""
    _, writer = await asyncio.open_connection(*served)
    writer.write(
        b"POST /v1/sites HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer dev-admin-token\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": '
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    log = tmp_path / "api.log"
    deadline = time.monotonic() + 5
    while b'"path":"/v1/sites"' not in log.read_bytes() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    lines = [line for line in log.read_bytes().splitlines() if b'"path":"/v1/sites"' in line]
    assert len(lines) == 1, log.read_text()
    assert b'"status":400' in lines[0] and b'"problem":"client-disconnected"' in lines[0]
    assert b"unhandled_error" not in log.read_bytes()
    assert await conn.fetchval("SELECT count(*) FROM sites") == 0


async def test_an_idle_keep_alive_connection_is_closed(served: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*served)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    started = time.monotonic()
    await asyncio.wait_for(reader.read(), timeout=5)  # the rest of the body, then EOF
    writer.close()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "extra",
    [
        {f"x-h{i}": "1" for i in range(100)},  # too many
        {"x-big": "a" * 20_000},  # too large in all
    ],
)
async def test_too_many_or_too_large_headers_are_431(
    client: httpx.AsyncClient, extra: dict[str, str]
) -> None:
    response = await client.get("/v1/sites", headers=extra)
    assert response.status_code == 431
    assert response.json()["type"] == "/problems/headers-too-large"


async def test_one_device_key_cannot_fill_the_api(settings: Settings) -> None:
    limited = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        device_max_in_flight=2,
        body_read_timeout_s=10,
    )
    async with (
        RunningApi(limited) as api,
        httpx.AsyncClient(base_url=api.url) as client,
        httpx.AsyncClient(base_url=api.url, headers=ADMIN) as admin,
    ):
        site = await make_site(admin)
        key = await device_key(admin, site)
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"measurements": '
            await release.wait()
            yield b"[]}"

        held = [
            asyncio.create_task(
                client.post(
                    f"/v1/sites/{site}/measurements",
                    content=slow_body(),
                    headers={**auth, "Idempotency-Key": f"held-{i}"},
                )
            )
            for i in range(2)
        ]
        await asyncio.sleep(0.3)
        third = await client.post(
            f"/v1/sites/{site}/measurements",
            json=batch(readings(1)),
            headers={**auth, "Idempotency-Key": "third"},
        )
        assert third.status_code == 429, third.text
        assert third.json()["type"] == "/problems/device-busy"
        assert third.headers["Retry-After"] == "1"
        other_site = await make_site(admin)
        other_key = await device_key(admin, other_site)
        other = await client.post(
            f"/v1/sites/{other_site}/measurements",
            json=batch(readings(1)),
            headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "other"},
        )
        assert other.status_code == 202  # another device is not held up
        release.set()
        for task in held:
            assert (await task).status_code == 422  # the empty batch, once it arrived
        again = await client.post(
            f"/v1/sites/{site}/measurements",
            json=batch(readings(1)),
            headers={**auth, "Idempotency-Key": "third"},
        )
        assert again.status_code == 202  # room again


async def test_made_up_tokens_are_refused_without_a_database_round_trip(
    settings: Settings, pg_server: PostgresServer
) -> None:
    if pg_server.kind != "local":
        pytest.skip(f"needs a Postgres the harness can stop (this one is {pg_server.kind})")
    guarded = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        auth_failure_burst=5,
        auth_failures_per_s=0.01,
    )
    async with (
        RunningApi(guarded) as api,
        httpx.AsyncClient(base_url=api.url) as client,
        httpx.AsyncClient(base_url=api.url, headers=ADMIN) as admin,
    ):
        site = await make_site(admin)

        async def ingest_with(key: str) -> int:
            response = await client.post(
                f"/v1/sites/{site}/measurements",
                json=batch(readings(1)),
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k"},
            )
            return response.status_code

        async def admin_with(token: str) -> int:
            response = await client.get("/v1/devices", headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        first_bad = "emk_" + secrets.token_urlsafe(32)
        assert [await ingest_with(first_bad)] + [
            await ingest_with("emk_" + secrets.token_urlsafe(32)) for _ in range(4)
        ] == [401] * 5
        assert await ingest_with("emk_" + secrets.token_urlsafe(32)) == 429
        assert await admin_with("emo_" + secrets.token_urlsafe(32)) == 429  # same address
        await asyncio.to_thread(pg_server.stop)
        try:
            codes = [await ingest_with("emk_" + secrets.token_urlsafe(32)) for _ in range(50)]
            codes += [await admin_with("emo_" + secrets.token_urlsafe(32)) for _ in range(50)]
            # With Postgres gone, any lookup would be a 503: none was attempted.
            assert set(codes) == {429}
        finally:
            await asyncio.to_thread(pg_server.start)


async def test_a_known_bad_key_is_refused_from_memory(
    settings: Settings, pg_server: PostgresServer
) -> None:
    if pg_server.kind != "local":
        pytest.skip(f"needs a Postgres the harness can stop (this one is {pg_server.kind})")
    async with (
        RunningApi(settings) as api,
        httpx.AsyncClient(base_url=api.url) as client,
        httpx.AsyncClient(base_url=api.url, headers=ADMIN) as admin,
    ):
        site = await make_site(admin)
        bad = {"Authorization": "Bearer emk_" + secrets.token_urlsafe(32), "Idempotency-Key": "k"}
        path = f"/v1/sites/{site}/measurements"
        assert (await client.post(path, json=batch(readings(1)), headers=bad)).status_code == 401
        await asyncio.to_thread(pg_server.stop)
        try:
            again = await client.post(path, json=batch(readings(1)), headers=bad)
            assert again.status_code == 401  # not 503: remembered, not looked up
        finally:
            await asyncio.to_thread(pg_server.start)


async def test_ready_answers_from_a_short_cache(settings: Settings) -> None:
    async with RunningApi(settings) as api, httpx.AsyncClient(base_url=api.url) as client:
        app = api.server.config.app
        assert isinstance(app, RequestContext)  # what create_app returns
        readiness = app.state.readiness
        before = readiness.rounds
        answers = await asyncio.gather(*(client.get("/ready") for _ in range(200)))
        assert {a.status_code for a in answers} == {200}
        assert readiness.rounds - before <= 2  # 200 requests, at most a round a second
