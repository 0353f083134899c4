"""Network chaos: the real API and worker behind a fault-injecting proxy; a retrying client.

Responses lost after commit, resets mid-body and delays: retries with the same key must end
in exact totals, and no idempotency record may be left half-done.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.harness.services import RedisServer
from tests.integration.apiproc import api_process
from tests.integration.chaos import ChaosProxy
from tests.integration.workers import (
    WorkerProcess,
    actual_totals,
    expected_totals,
    wait_drained,
)

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": "Bearer dev-admin-token"}


async def send_until_answered(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[httpx.Response, int]:
    """Retry with the same Idempotency-Key until an HTTP answer arrives, as devices do."""
    deadline = time.monotonic() + 60  # generous: the machine may be busy with other work
    attempt = 0
    errors: list[str] = []
    while time.monotonic() < deadline:
        attempt += 1
        try:
            response = await client.post(path, json=body, headers=headers)
        except httpx.TransportError as exc:
            errors.append(type(exc).__name__)
            await asyncio.sleep(0.02)
            continue
        if response.status_code == 409:  # the first try is still in flight
            errors.append("409")
            await asyncio.sleep(float(response.headers["Retry-After"]) / 10)
            continue
        return response, attempt
    raise AssertionError(f"no answer in 60 s after {attempt} tries: {errors[-10:]}")


async def test_retries_through_a_faulty_network_end_in_exact_totals(
    conn: asyncpg.Connection, db_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with WorkerProcess(
        database_url=db_url, redis_url=redis_server.url, log_dir=tmp_path, name="chaos-worker"
    ):
        with api_process(
            db_url, redis_server.url, tmp_path / "api.log", DEVICE_RATE_PER_S="10000"
        ) as base:
            async with httpx.AsyncClient(base_url=base, headers=ADMIN) as admin:
                sites = []
                for i in range(3):
                    r = await admin.post(
                        "/v1/sites", json={"name": f"chaos-{i}", "emission_limit_kg": 1e6}
                    )
                    sites.append(r.json()["id"])
                keys = {}
                for site in sites:
                    r = await admin.post(
                        "/v1/devices", json={"device_id": f"dev-{site}", "site_ids": [site]}
                    )
                    keys[site] = r.json()["key"]
            proxy = ChaosProxy(int(base.rsplit(":", 1)[1]), fault_rate=0.5, seed=7)
            await proxy.start()
            rng = random.Random(3)
            sent: list[tuple[int, datetime, float]] = []
            start = datetime(2026, 1, 1, tzinfo=UTC)
            # No keep-alive: each try is a new connection, so each meets its own fault.
            limits = httpx.Limits(max_keepalive_connections=0)
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{proxy.port}", timeout=5, limits=limits
                ) as client:

                    async def device(site: int) -> list[int]:
                        attempts = []
                        for n in range(15):
                            items: list[dict[str, Any]] = []
                            for _ in range(rng.randint(1, 20)):
                                ts = start + timedelta(minutes=5 * rng.randint(0, 2000))
                                kg = round(rng.uniform(0, 20), 3)
                                if all(i["ts"] != ts.isoformat() for i in items):
                                    items.append({"ts": ts.isoformat(), "methane_kg": kg})
                            headers = {
                                "Authorization": f"Bearer {keys[site]}",
                                "Idempotency-Key": str(uuid.uuid4()),
                            }
                            response, tries = await send_until_answered(
                                client,
                                f"/v1/sites/{site}/measurements",
                                {"measurements": items},
                                headers,
                            )
                            assert response.status_code == 202, response.text
                            attempts.append(tries)
                            sent.extend(
                                (site, datetime.fromisoformat(i["ts"]), i["methane_kg"])
                                for i in items
                            )
                            if n % 4 == 0:  # an old reading re-sent later, under a new key
                                again = rng.choice(items)
                                await send_until_answered(
                                    client,
                                    f"/v1/sites/{site}/measurements",
                                    {"measurements": [again]},
                                    {**headers, "Idempotency-Key": str(uuid.uuid4())},
                                )
                        return attempts

                    tries = await asyncio.gather(*(device(s) for s in sites))
            finally:
                await proxy.close()
        await wait_drained(conn, timeout=20)
    # Every fault kind happened, and some requests needed more than one try.
    assert all(proxy.seen[f] > 0 for f in ("delay", "drop_response", "reset_mid_body"))
    assert max(max(t) for t in tries) > 1
    # Concurrent devices post to different sites, so "first value sent" is well defined.
    year = datetime.now(UTC).year
    expected = expected_totals(sorted(sent, key=lambda r: 0), year=year)
    actual = await actual_totals(conn, year=year)
    assert actual.lifetime_kg == expected.lifetime_kg
    assert actual.readings == expected.readings
    assert actual.hourly == expected.hourly
    # No idempotency record is half-done: each is a complete 202 whose batch exists.
    records = await conn.fetch("SELECT * FROM ingest_requests")
    assert len(records) >= len(sites) * 15
    for record in records:
        assert record["status_code"] == 202
        assert record["response_body"].startswith(b'{"batch_id":')
    orphans = await conn.fetchval(
        "SELECT count(*) FROM measurements m WHERE NOT EXISTS "
        "(SELECT 1 FROM ingest_requests r WHERE r.batch_id = m.batch_id)"
    )
    assert orphans == 0
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL") == 0
