"""Passwords in DATABASE_URL and REDIS_URL work end to end (issue 13 item 4): migrate, the API
and the worker log in to a PostgreSQL that demands scram-sha-256 and a Redis that demands AUTH,
with a password that needs percent-encoding in a URL; a wrong password is refused."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cli.localservers import LocalPostgres, LocalRedis
from tests.harness.processes import ROOT, ApiProcess, WorkerProcess, free_port, wait_for
from tests.integration.helpers import batch, device_key, make_site, post_batch, readings

PASSWORD = "p@ss:w/rd%&#?é"  # every character a URL would misread if left unencoded
ADMIN = {"Authorization": "Bearer dev-admin-token"}
pytestmark = pytest.mark.slow


@pytest.fixture
def servers() -> Iterator[tuple[LocalPostgres, LocalRedis]]:
    # Not in pytest's temp dirs: Postgres runs as `postgres` when we are root.
    data = Path(tempfile.mkdtemp(prefix="emissions-passwords-", dir="/tmp"))
    pg = LocalPostgres(data, free_port(), durable=False, password=PASSWORD)
    redis = LocalRedis(data, free_port(), durable=False, password=PASSWORD)
    try:
        pg.start()
        redis.start()
        yield pg, redis
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(data, ignore_errors=True)


def _migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "migrate"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "LOG_JSON": "true"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_api_worker_and_migrate_log_in_with_encoded_passwords(
    servers: tuple[LocalPostgres, LocalRedis], tmp_path: Path
) -> None:
    pg, redis = servers
    database_url = pg.url("emissions")
    assert quote(PASSWORD, safe="") in database_url and PASSWORD not in database_url
    wrong = database_url.replace(quote(PASSWORD, safe=""), "wrong")
    refused = await asyncio.to_thread(_migrate, wrong)
    assert refused.returncode != 0
    assert "password authentication failed" in refused.stdout + refused.stderr
    done = await asyncio.to_thread(_migrate, database_url)
    assert done.returncode == 0, done.stdout + done.stderr

    env = {"DATABASE_URL": database_url, "REDIS_URL": redis.url}
    api = ApiProcess(env=env, log_dir=tmp_path)
    worker = WorkerProcess(database_url=database_url, redis_url=redis.url, log_dir=tmp_path)
    await api.start()
    try:
        # Entering starts the worker (ready once it logs worker_started); leaving kills it.
        async with worker, httpx.AsyncClient(base_url=api.url, headers=ADMIN) as client:
            ready = (await client.get("/ready")).json()
            assert (ready["postgres"], ready["redis"]) == ("ok", "ok")
            site = await make_site(client)
            key = await device_key(client, site)
            auth = {"Authorization": f"Bearer {key}"}
            response = await post_batch(client, site, batch(readings(3)), headers=auth)
            assert response.status_code == 202

            async def drained() -> bool:
                body = (await client.get(f"/v1/sites/{site}")).json()
                return bool(body["reading_count"] == 3)

            await wait_for(drained, timeout=15, message="the worker never drained the batch")
            assert worker.events("redis_unreachable") == []  # arq logged in to Redis too
            assert worker.events("drained")  # by a nudge or a sweep through arq
    finally:
        await api.stop()
