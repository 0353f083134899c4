"""Small helpers shared by integration tests: make sites, send batches, count what is stored."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

_names = itertools.count()
BASE_TS = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


async def make_site(client: httpx.AsyncClient, *, limit_kg: float = 10_000.0) -> int:
    response = await client.post(
        "/v1/sites", json={"name": f"site-{next(_names)}", "emission_limit_kg": limit_kg}
    )
    assert response.status_code == 201, response.text
    site_id: int = response.json()["id"]
    return site_id


def readings(
    n: int, *, start: datetime = BASE_TS, kg: float = 1.25, step_min: int = 15
) -> list[dict[str, Any]]:
    return [
        {"ts": (start + timedelta(minutes=step_min * i)).isoformat(), "methane_kg": kg + i}
        for i in range(n)
    ]


def batch(items: list[dict[str, Any]], device_id: str = "dev-1") -> dict[str, Any]:
    return {"device_id": device_id, "measurements": items}


_device_keys: weakref.WeakKeyDictionary[httpx.AsyncClient, dict[tuple[int, str], str]] = (
    weakref.WeakKeyDictionary()
)


async def device_key(client: httpx.AsyncClient, site_id: int, device_id: str = "dev-1") -> str:
    """A key for device_id bound to site_id, created once per client (via the admin API)."""
    cache = _device_keys.setdefault(client, {})
    if (site_id, device_id) not in cache:
        response = await client.post(
            "/v1/devices",
            json={"device_id": device_id, "site_ids": [site_id]},
            headers={"Authorization": "Bearer dev-admin-token"},
        )
        assert response.status_code == 201, response.text
        cache[(site_id, device_id)] = response.json()["key"]
    return cache[(site_id, device_id)]


async def device_auth(
    client: httpx.AsyncClient, site_id: int, device_id: str = "dev-1"
) -> dict[str, str]:
    return {"Authorization": f"Bearer {await device_key(client, site_id, device_id)}"}


async def post_batch(
    client: httpx.AsyncClient,
    site_id: int,
    body: dict[str, Any] | bytes,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a batch as its device (a key for body["device_id"] unless headers bring one)."""
    device = body.get("device_id") if isinstance(body, dict) else None
    headers = headers or {}
    if "Authorization" not in headers:
        headers = {**(await device_auth(client, site_id, device or "dev-1")), **headers}
    all_headers = {"Idempotency-Key": key or uuid.uuid4().hex, **headers}
    if isinstance(body, bytes):
        all_headers.setdefault("Content-Type", "application/json")
        return await client.post(
            f"/v1/sites/{site_id}/measurements", content=body, headers=all_headers
        )
    return await client.post(f"/v1/sites/{site_id}/measurements", json=body, headers=all_headers)


# Every table in the public schema (a partitioned table once, for all its partitions) but the
# migrations' own record: a table a new migration adds is counted without touching this file.
_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'schema_migrations'
ORDER BY c.relname
"""


async def table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Row counts of every table a request can write: the 'database unchanged' check."""
    tables = [row["relname"] for row in await conn.fetch(_TABLES)]
    # One statement for all of them: two round trips per check, however many tables.
    counts = " UNION ALL ".join(
        f'SELECT {i} AS i, count(*) AS n FROM "{table}"' for i, table in enumerate(tables)
    )
    return {tables[row["i"]]: row["n"] for row in await conn.fetch(counts)}


async def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `emissions ARGS` as a real process with extra environment variables."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
