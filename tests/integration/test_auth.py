"""Device keys and operator tokens: who may write what, revocation, limits, no leaked secrets."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import httpx
import pytest

from service import devices
from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import (
    BASE_TS,
    batch,
    device_auth,
    make_site,
    post_batch,
    readings,
    run_cli,
    table_counts,
)


async def test_device_key_lifecycle_create_list_revoke(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    created = await client.post(
        "/v1/devices", json={"device_id": "pad-7", "site_ids": [site], "name": "north mast"}
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("emk_") and len(key) > 40
    listed = await client.get("/v1/devices", params={"site_id": site})
    assert key not in listed.text
    assert [k["device_id"] for k in listed.json()] == ["pad-7"]
    assert key.encode() not in b"".join(
        bytes(r["key_hash"]) for r in await conn.fetch("SELECT key_hash FROM device_keys")
    )
    auth = {"Authorization": f"Bearer {key}"}
    ok = await post_batch(client, site, batch(readings(1), device_id="pad-7"), headers=auth)
    assert ok.status_code == 202
    key_id = created.json()["device"]["id"]
    revoked = await client.delete(f"/v1/devices/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    again = await post_batch(client, site, batch(readings(2), device_id="pad-7"), headers=auth)
    assert again.status_code == 401
    assert again.json()["type"] == "/problems/device-key-invalid"
    query = "SELECT action FROM ops_audit WHERE action LIKE 'device.%' ORDER BY id"
    actions = [r["action"] for r in await conn.fetch(query)]
    assert actions == ["device.create", "device.revoke"]


async def test_key_revoked_elsewhere_is_refused_on_the_next_request_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # The API remembers keys it found live; another process (the CLI, another API process)
    # revoking one is seen by the ingest transaction itself, for a new batch and a replay.
    site = await make_site(client)
    auth = await device_auth(client, site, "pad-9")
    first = batch(readings(2), device_id="pad-9")
    assert (await post_batch(client, site, first, key="k-1", headers=auth)).status_code == 202
    await conn.execute("UPDATE device_keys SET revoked_at = now() WHERE device_id = 'pad-9'")
    before = await table_counts(conn)
    later = batch(readings(2, start=BASE_TS + timedelta(days=1)), device_id="pad-9")
    for body, key in ((later, "k-2"), (first, "k-1")):
        for _ in range(2):  # the second time the key is no longer remembered
            refused = await post_batch(client, site, body, key=key, headers=auth)
            assert refused.status_code == 401
            assert refused.json()["type"] == "/problems/device-key-invalid"
    assert await table_counts(conn) == before


async def test_missing_or_unknown_device_key_is_401_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    before = await table_counts(conn)
    for headers, slug in (
        ({"Authorization": ""}, "device-key-missing"),
        ({"Authorization": "Basic abc"}, "device-key-missing"),
        ({"Authorization": "Bearer emk_not-a-key"}, "device-key-invalid"),
        ({"Authorization": "Bearer dev-admin-token"}, "device-key-invalid"),
    ):
        response = await post_batch(client, site, batch(readings(1)), headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == f"/problems/{slug}"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await table_counts(conn) == before


async def test_key_for_another_site_is_403_and_unknown_site_404(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    mine, theirs = await make_site(client), await make_site(client)
    auth = await device_auth(client, mine)
    before = await table_counts(conn)
    foreign = await post_batch(client, theirs, batch(readings(1)), headers=auth)
    assert foreign.status_code == 403
    assert foreign.json()["type"] == "/problems/site-forbidden"
    unknown = await post_batch(client, 987654, batch(readings(1)), headers=auth)
    assert unknown.status_code == 404
    assert await table_counts(conn) == before


async def test_body_device_must_match_the_key_or_is_taken_from_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    auth = await device_auth(client, site, "pad-1")
    before = await table_counts(conn)
    other = await post_batch(client, site, batch(readings(1), device_id="pad-2"), headers=auth)
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/device-mismatch"
    assert await table_counts(conn) == before
    implicit = await post_batch(client, site, {"measurements": readings(2)}, headers=auth)
    assert implicit.status_code == 202
    assert implicit.json()["device_id"] == "pad-1"
    devices = {r["device_id"] for r in await conn.fetch("SELECT device_id FROM measurements")}
    assert devices == {"pad-1"}


async def test_operator_writes_need_an_admin_token(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    device = await device_auth(client, site)
    before = await table_counts(conn)
    attempts = [
        ("POST", "/v1/sites", {"name": "x", "emission_limit_kg": 1}),
        ("PATCH", f"/v1/sites/{site}", {"name": "renamed"}),
        ("POST", "/v1/devices", {"device_id": "d", "site_ids": [site]}),
        ("GET", "/v1/devices", None),
        ("DELETE", "/v1/devices/1", None),
        ("POST", "/v1/ops/outbox/replay", {"all_dead": True}),
    ]
    for headers in ({}, device, {"Authorization": "Bearer wrong"}):
        for method, path, body in attempts:
            response = await anon_client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["type"] == "/problems/unauthorized"
    assert await table_counts(conn) == before
    # Reads stay open in development.
    assert (await anon_client.get(f"/v1/sites/{site}")).status_code == 200
    assert (await anon_client.get("/v1/ops/queue")).status_code == 200


async def test_production_mode_protects_reads_but_not_health(
    settings: Settings,
) -> None:
    prod = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        environment="production",
        admin_tokens="ops-team:s3cret-token-for-prod-0123456789abcdef",
    )
    async with RunningApi(prod) as api, httpx.AsyncClient(base_url=api.url) as anon:
        for path in ("/v1/sites", "/v1/ops/queue", "/v1/ops/outbox", "/metrics"):
            assert (await anon.get(path)).status_code == 401, path
            authed = await anon.get(
                path, headers={"Authorization": "Bearer s3cret-token-for-prod-0123456789abcdef"}
            )
            assert authed.status_code == 200, path
        # The development token means nothing here.
        dev = await anon.get("/v1/sites", headers={"Authorization": "Bearer dev-admin-token"})
        assert dev.status_code == 401
        for path in ("/health", "/ready", "/problems"):
            assert (await anon.get(path)).status_code == 200, path


async def test_cli_keys_and_tokens(
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    db_url: str,
) -> None:
    site = await make_site(client)
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    made = await run_cli(
        "devices", "create", "--site", str(site), "--device-id", "cli-dev", env=env
    )
    assert made.returncode == 0, made.stderr
    key = next(line for line in made.stdout.splitlines() if line.startswith("emk_"))
    ok = await post_batch(
        client,
        site,
        batch(readings(1), device_id="cli-dev"),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert ok.status_code == 202
    listed = await run_cli("devices", "list", env=env)
    assert "cli-dev" in listed.stdout
    assert key not in listed.stdout
    token_out = await run_cli("tokens", "create", "--name", "alice", env=env)
    token = next(line for line in token_out.stdout.splitlines() if line.startswith("emo_"))
    replay = await anon_client.post(
        "/v1/ops/outbox/replay",
        json={"site_id": site, "dry_run": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert replay.status_code == 200
    assert replay.json()["audit"]["actor"] == "alice"
    assert (await run_cli("tokens", "revoke", "--name", "alice", env=env)).returncode == 0
    denied = await anon_client.post(
        "/v1/ops/outbox/replay",
        json={"site_id": site, "dry_run": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert denied.status_code == 401
    key_id = await conn.fetchval("SELECT id FROM device_keys WHERE device_id = 'cli-dev'")
    assert (await run_cli("devices", "revoke", str(key_id), env=env)).returncode == 0
    gone = await post_batch(
        client,
        site,
        batch(readings(2), device_id="cli-dev"),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert gone.status_code == 401
    cli_actions = "SELECT action FROM ops_audit WHERE actor = 'cli' ORDER BY id"
    assert [r["action"] for r in await conn.fetch(cli_actions)] == [
        "device.create",
        "token.create",
        "token.revoke",
        "device.revoke",
    ]


async def test_cli_lists_sites_with_their_year_against_the_limit(
    client: httpx.AsyncClient, db_url: str
) -> None:
    site = await make_site(client, limit_kg=2000)
    listed = await run_cli("sites", "list", env={"DATABASE_URL": db_url, "LOG_JSON": "true"})
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if line.split()[0] == str(site)]
    assert "0.0 kg" in line
    assert "of 2,000" in line
    assert line.rstrip().endswith("ok")


async def test_no_secret_reaches_logs_errors_or_metrics(
    client: httpx.AsyncClient, capfd: pytest.CaptureFixture[str]
) -> None:
    site = await make_site(client)
    auth = await device_auth(client, site)
    key = auth["Authorization"].removeprefix("Bearer ")
    await post_batch(client, site, batch(readings(1)), headers=auth)
    await post_batch(client, site + 1, batch(readings(1)), headers=auth)  # an error, with key
    await post_batch(client, site, batch(readings(1)), headers={"Authorization": f"Bearer {key}x"})
    bodies = [(await client.get(p)).text for p in ("/metrics", "/v1/ops/outbox", "/v1/devices")]
    out, err = capfd.readouterr()
    for text in [out, err, *bodies]:
        assert key not in text
        assert "dev-admin-token" not in text


async def test_a_flooding_device_gets_429_while_another_keeps_succeeding(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    limited = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        device_rate_per_s=5,
        device_burst=5,
        device_max_in_flight=100,  # this test is about the rate; the in-flight cap has its own
    )
    admin = {"Authorization": "Bearer dev-admin-token"}
    async with (
        RunningApi(limited) as api,
        httpx.AsyncClient(base_url=api.url, headers=admin, timeout=30) as client,
    ):
        site = await make_site(client)
        flood_auth = await device_auth(client, site, "flooder")
        calm_auth = await device_auth(client, site, "calm")

        async def flood() -> list[httpx.Response]:
            return await asyncio.gather(
                *(
                    post_batch(
                        client, site, batch(readings(1, kg=float(i)), "flooder"), headers=flood_auth
                    )
                    for i in range(60)
                )
            )

        async def calm() -> list[httpx.Response]:
            answers = []
            for i in range(4):
                start = readings(1)[0]["ts"]
                body = batch([{"ts": start, "methane_kg": float(i)}], "calm")
                answers.append(await post_batch(client, site, body, headers=calm_auth))
                await asyncio.sleep(0.25)
            return answers

        flooded, calmed = await asyncio.gather(flood(), calm())
    statuses = [r.status_code for r in flooded]
    assert statuses.count(429) >= 40, statuses
    assert set(statuses) <= {202, 429}
    limited_answer = next(r for r in flooded if r.status_code == 429)
    assert int(limited_answer.headers["Retry-After"]) >= 1
    assert limited_answer.json()["type"] == "/problems/rate-limited"
    assert [r.status_code for r in calmed] == [202, 202, 202, 202]


def test_device_key_cache_remembers_found_keys_until_ttl_and_forgets_by_key_id() -> None:
    known = devices.DeviceKeyCache(ttl_s=2.0, max_keys=2)
    one, two = devices.DeviceIdentity(1, "pad-1", [7]), devices.DeviceIdentity(2, "pad-2", [7])
    assert known.get("emk_one", now=0.0) is None
    known.remember("emk_one", one, now=0.0)
    known.remember("emk_two", two, now=0.0)
    assert known.get("emk_one", now=1.9) == one
    assert known.get("emk_one", now=2.0) is None  # expired: looked up again
    known.forget(2)
    assert known.get("emk_two", now=0.0) is None
    assert known.get("emk_one", now=0.0) == one
