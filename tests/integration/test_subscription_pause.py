"""Pausing a webhook subscription: while paused the real worker queues its deliveries but sends
none (the backlog is kept and shown); after resume each is sent exactly once. Pause and resume
are operator actions, audited, idempotent, and refused clearly for a disabled or unknown one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import make_site
from tests.integration.receiver import Receiver
from tests.integration.test_delivery import batch_event_ids, send_batches
from tests.integration.workers import WorkerProcess, wait_for

TOKENS = {
    "viewer": "viewer-token-for-the-pause-tests-0123456789",
    "operator": "operator-token-for-the-pause-tests-0123456789",
    "admin": "admin-token-for-the-pause-tests-0123456789",
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
async def roles_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a viewer, an operator and an admin token (and the development one, which
    the helpers create device keys with)."""
    tokens = [f"{r}-user:{r}:{t}" for r, t in TOKENS.items()]
    configured = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        admin_tokens=",".join([settings.admin_tokens, *tokens]),
    )
    async with RunningApi(configured) as api, httpx.AsyncClient(base_url=api.url) as http:
        yield http


async def subscribe(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    body = {"url": url, "event_types": ["batch.accepted"]}
    created = await http.post("/v1/subscriptions", json=body, headers=auth("admin"))
    assert created.status_code == 201, created.text
    sub: dict[str, Any] = created.json()["subscription"]
    return sub


async def audit_rows(conn: asyncpg.Connection) -> list[tuple[str, str, int, Any]]:
    rows = await conn.fetch(
        "SELECT action, actor, affected, params FROM ops_audit"
        " WHERE action LIKE 'subscription.%' ORDER BY id"
    )
    return [(r["action"], r["actor"], r["affected"], r["params"]) for r in rows]


async def test_a_paused_subscription_keeps_its_backlog_and_sends_it_once_after_resume(
    roles_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    receiver = Receiver().start()
    other = Receiver().start()
    try:
        http = roles_client
        http.headers.update(auth("admin"))  # for the helpers (sites); each action names its own
        sub = await subscribe(http, receiver.url)
        await subscribe(http, other.url)  # a running subscription beside it
        site = await make_site(http)
        paused = await http.post(f"/v1/subscriptions/{sub['id']}/pause", headers=auth("operator"))
        assert paused.status_code == 200, paused.text
        body = paused.json()
        assert body["changed"] is True
        assert body["subscription"]["paused_by"] == "operator-user"
        assert body["subscription"]["paused_at"] is not None
        assert body["audit"]["action"] == "subscription.pause"

        env = {"DELIVERY_POLL_S": "0.05", "DELIVERY_TIMEOUT_S": "2"}
        urls = {"database_url": settings.database_url, "redis_url": settings.redis_url}
        async with WorkerProcess(**urls, log_dir=tmp_path, name="w", env=env):
            await send_batches(http, site, 3)
            # The other subscription gets all three: the worker is draining and delivering.
            await wait_for(lambda: len(other.received) == 3, timeout=20, message="not sent")
            queued = "SELECT count(*) FROM deliveries WHERE subscription_id = $1"
            assert await conn.fetchval(queued, sub["id"]) == 3  # the drain still queues them
            await asyncio.sleep(1.0)  # twenty delivery polls: none may go to the paused one
            assert receiver.received == []
            attempts = "SELECT sum(attempts) FROM deliveries WHERE subscription_id = $1"
            assert await conn.fetchval(attempts, sub["id"]) == 0
            listed = (await http.get("/v1/subscriptions")).json()["items"]
            mine = next(s for s in listed if s["id"] == sub["id"])
            assert mine["paused_by"] == "operator-user"
            assert mine["health"]["backlog"] == 3 and mine["health"]["pending"] == 3
            assert mine["health"]["last_error"] is None  # paused is not failing

            again = await http.post(f"/v1/subscriptions/{sub['id']}/pause", headers=auth("admin"))
            assert again.status_code == 200
            assert again.json()["changed"] is False
            assert again.json()["subscription"]["paused_by"] == "operator-user"  # the first kept

            resumed = await http.post(
                f"/v1/subscriptions/{sub['id']}/resume", headers=auth("operator")
            )
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["changed"] is True
            assert resumed.json()["subscription"]["paused_at"] is None
            await wait_for(lambda: len(receiver.received) >= 3, timeout=20, message="not resumed")
            await asyncio.sleep(0.5)  # time for any duplicate to arrive
        ids = receiver.event_ids()
        assert sorted(ids) == sorted(await batch_event_ids(conn))
        assert len(ids) == 3  # each exactly once
        assert receiver.attempts == 3
        listed = (await http.get("/v1/subscriptions")).json()["items"]
        mine = next(s for s in listed if s["id"] == sub["id"])
        assert (mine["paused_at"], mine["health"]["backlog"]) == (None, 0)
        assert await audit_rows(conn) == [
            ("subscription.create", "admin-user", 1, {"subscription_id": sub["id"]}),
            ("subscription.create", "admin-user", 1, {"subscription_id": sub["id"] + 1}),
            ("subscription.pause", "operator-user", 1, {"subscription_id": sub["id"]}),
            ("subscription.pause", "admin-user", 0, {"subscription_id": sub["id"]}),
            ("subscription.resume", "operator-user", 1, {"subscription_id": sub["id"]}),
        ]
    finally:
        receiver.stop()
        other.stop()


async def test_pause_and_resume_need_an_operator_and_a_live_subscription(
    roles_client: httpx.AsyncClient, conn: asyncpg.Connection, receiver: Receiver
) -> None:
    http = roles_client
    sub = await subscribe(http, receiver.url)
    before = await audit_rows(conn)
    for action in ("pause", "resume"):
        path = f"/v1/subscriptions/{sub['id']}/{action}"
        assert (await http.post(path)).status_code == 401
        denied = await http.post(path, headers=auth("viewer"))
        assert denied.status_code == 403
        assert denied.json()["type"] == "/problems/forbidden-role"
        for missing in (999, 99999999999999999999):
            gone = await http.post(f"/v1/subscriptions/{missing}/{action}", headers=auth("admin"))
            assert gone.status_code == 404, gone.text
            assert gone.json()["type"] == "/problems/subscription-not-found"
    assert await audit_rows(conn) == before  # refused calls change and record nothing
    running = await http.post(f"/v1/subscriptions/{sub['id']}/resume", headers=auth("operator"))
    assert running.status_code == 200 and running.json()["changed"] is False
    assert (await http.delete(f"/v1/subscriptions/{sub['id']}", headers=auth("admin"))).is_success
    for action in ("pause", "resume"):
        disabled = await http.post(
            f"/v1/subscriptions/{sub['id']}/{action}", headers=auth("operator")
        )
        assert disabled.status_code == 409, disabled.text
        assert disabled.json()["type"] == "/problems/subscription-disabled"
    paused = "SELECT paused_at FROM webhook_subscriptions WHERE id = $1"
    assert await conn.fetchval(paused, sub["id"]) is None


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()
