"""Webhook egress is held to the destination policy: registration refuses what the URL alone
gives away (any spelling of a refused address, localhost names), and the sender checks every
address a host resolves to when it connects, so a name that resolves or rebinds to a refused
address, or a proxy from the environment, cannot take a delivery there. A refused delivery is
dead at once and says why."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from domain.webhooks import new_secret
from service.delivery import Deliverer
from service.infra import db
from service.infra.settings import Settings
from tests.integration.apiproc import api_process
from tests.integration.helpers import make_site, run_cli
from tests.integration.receiver import Receiver
from tests.integration.test_delivery import drain, send_batches, settings_fields

ADMIN = {"Authorization": "Bearer dev-admin-token"}
PRODUCTION_TOKEN = "ops:" + "p" * 40
FAST = {"delivery_timeout_s": 1.0, "delivery_poll_s": 0.05, "delivery_backoff_base_s": 0.05}


def production(settings: Settings, **more: Any) -> Settings:
    fields = {**settings_fields(settings), **FAST, "environment": "production", **more}
    fields["admin_tokens"] = PRODUCTION_TOKEN
    return Settings.from_env({}, **fields)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(settings)
    yield p
    await p.close()


async def registered(conn: asyncpg.Connection, *urls: str) -> list[int]:
    """Subscriptions as the table holds them, past registration's checks: registered while
    allowed, or names that resolved elsewhere then."""
    ids = []
    for url in urls:
        ids.append(
            await conn.fetchval(
                "INSERT INTO webhook_subscriptions (url, event_types, secret, description,"
                " created_by) VALUES ($1, '{batch.accepted}', $2, '', 'test') RETURNING id",
                url,
                new_secret(),
            )
        )
    return ids


async def outcomes(conn: asyncpg.Connection) -> dict[str, tuple[int, bool, str | None]]:
    """url -> (attempts, dead, last_error) of its one delivery."""
    rows = await conn.fetch(
        "SELECT s.url, d.attempts, d.dead_at IS NOT NULL AS dead, d.last_error"
        " FROM deliveries AS d JOIN webhook_subscriptions AS s ON s.id = d.subscription_id"
    )
    return {r["url"]: (r["attempts"], r["dead"], r["last_error"]) for r in rows}


REFUSED_EVERYWHERE = [
    ("http://10.0.0.5/hook", "refused: 10.0.0.5 is a private address"),
    ("http://0xa9fea9fe/latest/meta-data", "refused: 169.254.169.254 is a link-local address"),
    ("http://[::ffff:169.254.169.254]/x", "refused: ::ffff:a9fe:a9fe is a link-local address"),
    ("https://[fd00::1]:8443/x", "refused: fd00::1 is a unique-local address"),
    ("http://100.64.0.1/x", "refused: 100.64.0.1 is a private (CGNAT) address"),
    ("http://0300.0250.0.1/x", "refused: 192.168.0.1 is a private address"),
    ("http://224.0.0.1/x", "refused: 224.0.0.1 is a multicast address"),
    ("http://0/x", "refused: 0.0.0.0 is an unspecified address"),
]


async def test_registration_refuses_internal_addresses_in_any_spelling_with_the_reason(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    for url, reason in REFUSED_EVERYWHERE:
        body = {"url": url, "event_types": ["batch.accepted"]}
        response = await client.post("/v1/subscriptions", json=body, headers=ADMIN)
        assert response.status_code == 422, (url, response.text)
        (error,) = response.json()["errors"]
        assert error["pointer"] == "/url"
        assert error["detail"].startswith(reason), error
        assert error["detail"].endswith("(WEBHOOK_ALLOW_NETWORKS)")
    assert await conn.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0
    # Development allows loopback (local receivers), in every spelling.
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://2130706433:9/"):
        body = {"url": url, "event_types": ["batch.accepted"]}
        assert (await client.post("/v1/subscriptions", json=body, headers=ADMIN)).status_code == 201


LOOPBACK_SPELLINGS = [
    ("http://127.0.0.1:9/hook", "refused: 127.0.0.1 is a loopback address"),
    ("http://2130706433:9/hook", "refused: 127.0.0.1 is a loopback address"),
    ("http://0x7f000001:9/hook", "refused: 127.0.0.1 is a loopback address"),
    ("http://0177.0.0.1:9/hook", "refused: 127.0.0.1 is a loopback address"),
    ("http://127.1:9/hook", "refused: 127.0.0.1 is a loopback address"),
    ("http://[::1]:9/hook", "refused: ::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]:9/hook", "refused: ::ffff:7f00:1 is a loopback address"),
    ("http://localhost:9/hook", "refused: localhost is a loopback name"),
    ("http://hooks.localhost:9/hook", "refused: hooks.localhost is a loopback name"),
]


async def test_production_registration_refuses_loopback_unless_the_allow_list_names_it(
    db_url: str, settings: Settings, tmp_path: Path
) -> None:
    env = {"ENVIRONMENT": "production", "ADMIN_TOKENS": PRODUCTION_TOKEN}
    admin = {"Authorization": f"Bearer {PRODUCTION_TOKEN.partition(':')[2]}"}
    with api_process(db_url, settings.redis_url, tmp_path / "prod.log", **env) as base:
        async with httpx.AsyncClient(base_url=base, headers=admin) as http:
            for url, reason in LOOPBACK_SPELLINGS:
                body = {"url": url, "event_types": ["batch.accepted"]}
                response = await http.post("/v1/subscriptions", json=body)
                assert response.status_code == 422, (url, response.text)
                assert response.json()["errors"][0]["detail"].startswith(reason)
    cli_env = {"DATABASE_URL": db_url, "LOG_JSON": "true", **env}
    refused = await run_cli(
        "subscriptions", "create", "--url", "http://0x7f000001/", "--event-type", "site.stale",
        env=cli_env,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "refused: 127.0.0.1 is a loopback address" in refused.stdout + refused.stderr
    allowed = {**env, "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128"}
    with api_process(db_url, settings.redis_url, tmp_path / "allowed.log", **allowed) as base:
        async with httpx.AsyncClient(base_url=base, headers=admin) as http:
            for url, _ in LOOPBACK_SPELLINGS:
                body = {"url": url, "event_types": ["batch.accepted"]}
                assert (await http.post("/v1/subscriptions", json=body)).status_code == 201, url


async def test_delivery_to_a_refused_address_is_dead_at_once_and_says_why(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, settings: Settings
) -> None:
    """In production, with a receiver really listening on loopback: every way of naming it
    is refused when connecting, with no retry; allowed, the same URLs reach it."""
    receiver = Receiver().start()
    port = receiver.port
    urls = {
        f"http://127.0.0.1:{port}/hook": "refused: 127.0.0.1 is a loopback address",
        f"http://localhost:{port}/hook": "refused: localhost resolves to 127.0.0.1, a loopback"
        " address",
        f"http://2130706433:{port}/hook": "refused: 2130706433 resolves to 127.0.0.1, a loopback"
        " address",
        f"http://[::ffff:127.0.0.1]:{port}/hook": "refused: ::ffff:7f00:1 is a loopback address"
        " (127.0.0.1 inside IPv6)",
    }
    try:
        await registered(conn, *urls)
        await send_batches(client, await make_site(client), 1)
        await drain(conn)
        await Deliverer(pool, production(settings)).drain(timeout_s=5)
        assert receiver.attempts == 0
        for url, (attempts, dead, error) in (await outcomes(conn)).items():
            assert (attempts, dead) == (1, True), url  # dead at once: no retry can help
            assert error == urls[url] + " (WEBHOOK_ALLOW_NETWORKS)"

        await conn.execute("DELETE FROM deliveries")
        await send_batches(client, await make_site(client), 1)
        await drain(conn)
        allow = production(settings, webhook_allow_networks="127.0.0.0/8,::1/128")
        await Deliverer(pool, allow).drain(timeout_s=5)
        assert receiver.attempts == len(urls)
        assert all(not dead for _, dead, _ in (await outcomes(conn)).values())
    finally:
        receiver.stop()


async def test_a_name_that_rebinds_to_a_refused_address_is_refused_when_connecting(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only 127.0.0.2 is allowed. rebind.test first resolves there, then to 127.0.0.1, where a
    second receiver listens on the same port; then to both. (The answers are this process's
    resolver's; the sockets and receivers are real.)"""
    allowed = Receiver(host="127.0.0.2").start()
    trap = Receiver(host="127.0.0.1", port=allowed.port).start()
    port = allowed.port
    answers = [["127.0.0.2"], ["127.0.0.1"], ["127.0.0.2", "127.0.0.1"]]
    asked: list[str] = []

    async def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        ips = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    only = production(settings, webhook_allow_networks="127.0.0.2/32")
    try:
        await registered(conn, f"http://rebind.test:{port}/hook")
        errors = []
        for _ in answers:
            await send_batches(client, await make_site(client), 1)
            await drain(conn)
            await Deliverer(pool, only).drain(timeout_s=5)
            errors.append(
                await conn.fetchval("SELECT last_error FROM deliveries ORDER BY id DESC LIMIT 1")
            )
        refusal = (
            "refused: rebind.test resolves to 127.0.0.1, a loopback address"
            " (WEBHOOK_ALLOW_NETWORKS)"
        )
        assert errors == [None, refusal, refusal]  # with one bad address, the name is refused
        assert (allowed.attempts, trap.attempts) == (1, 0)
        assert asked == ["rebind.test"] * 3
        dead = "SELECT count(*) FROM deliveries WHERE dead_at IS NOT NULL AND attempts = 1"
        assert await conn.fetchval(dead) == 2
    finally:
        allowed.stop()
        trap.stop()


async def test_a_proxy_from_the_environment_does_not_carry_a_delivery_past_the_policy(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy would connect to the destination for us, unchecked: it is never used."""
    proxy = Receiver().start()  # answers 204 to whatever it is sent, as a proxy might
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        await registered(conn, "http://10.255.255.1:9/hook")
        await send_batches(client, await make_site(client), 1)
        await drain(conn)
        loopback_only = production(settings, webhook_allow_networks="127.0.0.0/8")
        await Deliverer(pool, loopback_only).drain(timeout_s=5)
        assert proxy.attempts == 0
        (outcome,) = (await outcomes(conn)).values()
        refusal = "refused: 10.255.255.1 is a private address (WEBHOOK_ALLOW_NETWORKS)"
        assert outcome == (1, True, refusal)
    finally:
        proxy.stop()
