"""The OpenAPI document is a contract a generated client can trust: openapi-python-client builds
a client from the LIVE document of a real API process with zero warnings, openapi-spec-validator
finds no error in it, and the whole flow runs through the generated code (a real worker drains).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.harness.processes import ApiProcess, WorkerProcess
from tests.harness.services import RedisServer

pytestmark = pytest.mark.slow
ADMIN_TOKEN = "dev-admin-token"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
async def api_url(db_url: str, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[str]:
    api = ApiProcess(
        env={"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "LOG_LEVEL": "warning"},
        log_dir=tmp_path,
    )
    await api.start(timeout=30)
    try:
        yield api.url
    finally:
        await api.stop(timeout=10)


async def _document(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_the_live_document_has_no_validator_errors(api_url: str) -> None:
    document = await _document(api_url)
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def _generate(base: str, into: Path) -> Any:
    """Generate the client from the live document; fail on any warning; import it."""
    result = subprocess.run(
        [str(GENERATOR), "generate", "--url", f"{base}/schema/openapi.json"],
        cwd=into,
        # Its post-generation hooks run ruff: the one next to it.
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert "error" not in output.lower(), output
    sys.path.insert(0, str(into / "emissions-engine-client"))
    try:
        return importlib.import_module("emissions_engine_client")
    finally:
        sys.path.pop(0)


async def _wait_for(probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_a_generated_client_drives_the_whole_flow(
    api_url: str, db_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    client_pkg = _generate(api_url, tmp_path)
    from emissions_engine_client.api.devices import create_device_key
    from emissions_engine_client.api.ingest import ingest_measurements
    from emissions_engine_client.api.ops import list_outbox, replay_outbox
    from emissions_engine_client.api.sites import create_site, get_site
    from emissions_engine_client.api.subscriptions import create_subscription
    from emissions_engine_client.models import (
        DeviceCreate,
        IngestBatch,
        IngestBatchMeasurementIn,
        ListOutboxStatus,
        ReplayRequest,
        SiteCreate,
        SubscriptionCreate,
    )

    admin = client_pkg.AuthenticatedClient(base_url=api_url, token=ADMIN_TOKEN)
    created = create_site.sync_detailed(
        client=admin, body=SiteCreate(name="generated", emission_limit_kg=10_000)
    )
    assert created.status_code == 201, created.content
    assert created.headers["location"] == f"/v1/sites/{created.parsed.id}"
    site = created.parsed.id
    other = create_site.sync(client=admin, body=SiteCreate(name="replayed", emission_limit_kg=10))
    key = create_device_key.sync(
        client=admin, body=DeviceCreate(device_id="gen-1", site_ids=[site, other.id])
    )
    assert key.key.startswith("emk_")
    device = client_pkg.AuthenticatedClient(base_url=api_url, token=key.key)
    at = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    batch = IngestBatch(
        measurements=[IngestBatchMeasurementIn(ts=at, methane_kg=1.5)], device_id="gen-1"
    )
    for target in (site, other.id):
        receipt = ingest_measurements.sync_detailed(
            site_id=target, client=device, body=batch, idempotency_key=f"gen-{target}"
        )
        assert receipt.status_code == 202, receipt.content
        assert receipt.parsed.accepted == 1
    # The second site's event dies before any worker sees it; it is replayed below.
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "UPDATE outbox SET dead_at = now(), attempts = 8, last_error = 'made dead'"
            " WHERE site_id = $1",
            other.id,
        )
    finally:
        await conn.close()

    worker = WorkerProcess(database_url=db_url, redis_url=redis_server.url, log_dir=tmp_path)
    async with worker:
        drained = await _wait_for(
            lambda: get_site.sync(site_id=site, client=admin).reading_count == 1
        )
        assert drained
        view = get_site.sync(site_id=site, client=admin)
        assert view.lifetime_kg == pytest.approx(1.5)

        dead = list_outbox.sync(client=admin, status=ListOutboxStatus.DEAD)
        assert [e.site_id for e in dead.items] == [other.id]
        replayed = replay_outbox.sync(
            client=admin, body=ReplayRequest(event_ids=[dead.items[0].id])
        )
        assert replayed.replayed == 1
        assert await _wait_for(
            lambda: get_site.sync(site_id=other.id, client=admin).reading_count == 1
        )

    subscription = create_subscription.sync_detailed(
        client=admin,
        body=SubscriptionCreate(
            url="http://127.0.0.1:9/hook", event_types=["site.threshold_crossed"]
        ),
    )
    assert subscription.status_code == 201, subscription.content
    assert subscription.parsed.secret.startswith("whsec_")
    assert subscription.parsed.subscription.url == "http://127.0.0.1:9/hook"
