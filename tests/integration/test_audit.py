"""GET /v1/ops/audit: the trail newest first, filtered by actor, action and time, keyset paged;
for operators and admins only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest

from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import run_cli

ONCALL = "oncall-operator-token-0123456789abcdef"
WALL = "wall-viewer-token-0123456789abcdef"


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client on an API with an admin (dev), an operator and a viewer token."""
    tokens = f"dev:dev-admin-token,oncall:operator:{ONCALL},wall:viewer:{WALL}"
    configured = Settings.from_env(
        {}, database_url=settings.database_url, redis_url=settings.redis_url, admin_tokens=tokens
    )
    async with (
        RunningApi(configured) as api,
        httpx.AsyncClient(
            base_url=api.url, headers={"Authorization": f"Bearer {ONCALL}"}, timeout=30
        ) as client,
    ):
        yield client


async def trail(http: httpx.AsyncClient, db_url: str) -> list[tuple[str, str, str]]:
    """Five writes by three actors: (actor, role, action), oldest first."""
    admin = {"Authorization": "Bearer dev-admin-token"}
    made = await http.post("/v1/sites", json={"name": "a", "emission_limit_kg": 1}, headers=admin)
    first = made.json()["id"]
    await http.post("/v1/ops/outbox/replay", json={"site_id": first, "dry_run": True})
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    assert (await run_cli("aggregates", "rebuild", "--site", str(first), env=env)).returncode == 0
    await http.post("/v1/ops/outbox/replay", json={"all_dead": True})
    await http.patch(f"/v1/sites/{first}", json={"name": "renamed"}, headers=admin)
    return [
        ("dev", "admin", "site.create"),
        ("oncall", "operator", "outbox.replay"),
        ("cli", "admin", "aggregates.rebuild"),
        ("oncall", "operator", "outbox.replay"),
        ("dev", "admin", "site.update"),
    ]


def summary(page: dict[str, object]) -> list[tuple[str, str, str]]:
    items = page["items"]
    assert isinstance(items, list)
    return [(e["actor"], e["role"], e["action"]) for e in items]


async def test_the_trail_lists_every_write_newest_first_with_name_and_role(
    http: httpx.AsyncClient, db_url: str
) -> None:
    expected = await trail(http, db_url)
    page = (await http.get("/v1/ops/audit")).json()
    assert summary(page) == expected[::-1]
    assert page["next_before"] is None
    newest = page["items"][0]
    assert newest["params"] == {"site_id": newest["params"]["site_id"], "fields": ["name"]}
    assert [e["dry_run"] for e in page["items"]][-2] is True  # the first replay was a dry run


async def test_filters_by_actor_action_and_time_range(
    http: httpx.AsyncClient, db_url: str, conn: asyncpg.Connection
) -> None:
    await trail(http, db_url)
    by_actor = (await http.get("/v1/ops/audit", params={"actor": "oncall"})).json()
    assert summary(by_actor) == [("oncall", "operator", "outbox.replay")] * 2
    by_action = (await http.get("/v1/ops/audit", params={"action": "site.create"})).json()
    assert summary(by_action) == [("dev", "admin", "site.create")]
    both = {"actor": "dev", "action": "outbox.replay"}
    assert (await http.get("/v1/ops/audit", params=both)).json()["items"] == []
    times = [r["at"] for r in await conn.fetch("SELECT at FROM ops_audit ORDER BY id")]
    window = {"from": times[1].isoformat(), "to": times[3].isoformat()}  # [2nd, 4th)
    in_window = (await http.get("/v1/ops/audit", params=window)).json()
    assert summary(in_window) == [
        ("cli", "admin", "aggregates.rebuild"),
        ("oncall", "operator", "outbox.replay"),
    ]
    later = {"from": (times[-1] + timedelta(seconds=1)).isoformat()}
    assert (await http.get("/v1/ops/audit", params=later)).json()["items"] == []


async def test_pages_follow_the_cursor_without_gaps_or_repeats(
    http: httpx.AsyncClient, db_url: str
) -> None:
    expected = await trail(http, db_url)
    seen: list[tuple[str, str, str]] = []
    ids: list[int] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        page = (await http.get("/v1/ops/audit", params=params)).json()
        seen += summary(page)
        ids += [e["id"] for e in page["items"]]
        if page["next_before"] is None:
            break
        params = {"limit": 2, "before": page["next_before"]}
    assert seen == expected[::-1]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)


async def test_only_operators_and_admins_read_it_and_bad_queries_are_refused(
    http: httpx.AsyncClient,
) -> None:
    viewer = await http.get("/v1/ops/audit", headers={"Authorization": f"Bearer {WALL}"})
    assert viewer.status_code == 403
    assert viewer.json()["required_role"] == "operator"
    anonymous = await http.get("/v1/ops/audit", headers={"Authorization": ""})
    assert anonymous.status_code == 401  # development too: the trail is not a plain read
    admin = await http.get("/v1/ops/audit", headers={"Authorization": "Bearer dev-admin-token"})
    assert admin.status_code == 200
    for params, pointer, status in (
        ({"limit": "501"}, "query:limit", 422),
        ({"before": "0"}, "query:before", 422),
        ({"from": "2026-01-01T00:00:00"}, "query:from", 422),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query:to", 422),
    ):
        answer = await http.get("/v1/ops/audit", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert [f"{e['in']}:{e['name']}" for e in answer.json()["errors"]] == [pointer]
