"""Triage of the outbox: the list's filters and keyset paging, one event's detail (payload,
attempts, every recorded failure, audit history), and the filtered bulk replay."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.drain import RetryPolicy, drain_batch
from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import batch, make_site, post_batch

FAST = RetryPolicy(max_attempts=30, base_s=0.001, cap_s=0.001)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


async def add_events(
    conn: asyncpg.Connection,
    site: int,
    n: int,
    *,
    event_type: str = "measurements.accepted",
    dead: bool = True,
    created: datetime = T0,
    payload: dict[str, Any] | None = None,
) -> list[int]:
    """n events made directly (one a minute from `created`), dead-lettered unless `dead` is
    False (then in backoff)."""
    rows = await conn.fetch(
        """
        INSERT INTO outbox (event_type, site_id, payload, created_at, available_at, attempts,
                            last_error, dead_at)
        SELECT $1, $2, $3, $4::timestamptz + make_interval(mins => g),
               now() + interval '1 hour', 3, 'boom', CASE WHEN $5 THEN now() END
        FROM generate_series(0, $6 - 1) AS g
        ORDER BY g
        RETURNING id
        """,
        event_type,
        site,
        payload or {"batch_id": str(uuid.uuid4()), "request_id": "r-x"},
        created,
        dead,
        n,
    )
    return [r["id"] for r in rows]


async def listed(client: httpx.AsyncClient, **params: Any) -> list[int]:
    response = await client.get("/v1/ops/outbox", params=params)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["items"]]


async def test_each_filter_narrows_the_list(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    a, b = await make_site(client), await make_site(client)
    dead_a = await add_events(conn, a, 2)
    retrying_a = await add_events(conn, a, 1, dead=False)
    dead_b = await add_events(conn, b, 1, event_type="site.stale")
    late_a = await add_events(conn, a, 1, created=T0 + timedelta(days=2))
    sent = await post_batch(
        client,
        a,
        batch([{"ts": "2026-03-01T00:00:00Z", "methane_kg": 1.0}]),
        headers={"X-Request-Id": "triage-req-1"},
    )
    assert sent.status_code in (200, 201, 202), sent.text
    accepted = await conn.fetchrow("SELECT id, payload FROM outbox ORDER BY id DESC LIMIT 1")
    assert accepted is not None
    assert accepted["payload"]["request_id"] == "triage-req-1"

    assert await listed(client, status="dead", site_id=a) == sorted(dead_a + late_a)[::-1]
    assert await listed(client, status="backoff") == retrying_a
    assert await listed(client, event_type="site.stale") == dead_b
    assert await listed(client, batch_id=accepted["payload"]["batch_id"]) == [accepted["id"]]
    assert await listed(client, request_id="triage-req-1") == [accepted["id"]]
    window = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    assert await listed(client, site_id=a, **window) == sorted(dead_a + retrying_a)[::-1]
    assert await listed(client, status="dead", site_id=b, event_type="measurements.accepted") == []


async def test_keyset_paging_walks_past_100_without_gaps_or_repeats(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    made = await add_events(conn, site, 250)
    seen: list[int] = []
    params: dict[str, Any] = {"status": "dead", "site_id": site}
    pages = 0
    while True:
        page = (await client.get("/v1/ops/outbox", params=params)).json()
        seen += [e["id"] for e in page["items"]]
        pages += 1
        if page["next_before"] is None:
            break
        params["before"] = page["next_before"]
    assert seen == sorted(made, reverse=True)
    assert pages == 3


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "zombie"}, "status"),
        ({"batch_id": "not-a-uuid"}, "batch_id"),
        ({"request_id": "has spaces"}, "request_id"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-03-02T00:00:00"}, "from"),
        ({"event_type": "nope"}, "event_type"),
        ({"site_id": "0"}, "site_id"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    response = await client.get("/v1/ops/outbox", params=params)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert {"in": "query", "name": name} in [
        {"in": e.get("in"), "name": e.get("name")} for e in problem["errors"]
    ]


async def test_a_backwards_range_is_empty_as_everywhere_in_the_api(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    made = await add_events(conn, site, 3)
    window = {"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
    assert await listed(client, site_id=site, **window) == sorted(made, reverse=True)
    backwards = {"from": window["to"], "to": window["from"]}
    response = await client.get("/v1/ops/outbox", params={"site_id": site, **backwards})
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_before": None}


async def test_detail_shows_payload_attempts_every_error_and_the_replays(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await conn.execute(
        f"""
        CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.site_id = {site} THEN RAISE EXCEPTION 'poisoned bucket %', now(); END IF;
        RETURN NEW; END $$;
        CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON site_hourly
        FOR EACH ROW EXECUTE FUNCTION poison();
        """
    )
    await post_batch(client, site, batch([{"ts": "2026-03-01T00:00:00Z", "methane_kg": 1.0}]))
    event_id = await conn.fetchval("SELECT id FROM outbox WHERE site_id = $1", site)
    for _ in range(23):
        await conn.execute("UPDATE outbox SET available_at = now() WHERE id = $1", event_id)
        assert (await drain_batch(conn, limit=10, policy=FAST, worker="w-test")).failed == 1
    replay = await client.post("/v1/ops/outbox/replay", json={"event_ids": [event_id]})
    assert replay.status_code == 200, replay.text
    filtered = await client.post(
        "/v1/ops/outbox/replay", json={"all_dead": True, "site_id": site, "dry_run": True}
    )
    other = await client.post("/v1/ops/outbox/replay", json={"event_ids": [event_id + 1]})
    assert filtered.status_code == other.status_code == 200

    response = await client.get(f"/v1/ops/outbox/{event_id}")
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == event_id
    assert detail["payload"]["accepted"] == 1
    assert detail["payload"]["batch_id"]
    assert detail["attempts"] == 0  # the replay gave it a fresh set
    errors = detail["errors"]
    assert [e["attempt"] for e in errors] == list(range(4, 24))  # the last 20 of 23
    assert {e["worker"] for e in errors} == {"w-test"}
    assert all("poisoned bucket" in e["error"] for e in errors)
    assert len({e["error"] for e in errors}) == 20  # each attempt's own message
    history = [(a["id"], a["matched_by"], a["dry_run"]) for a in detail["audit"]]
    assert history == [
        (filtered.json()["audit"]["id"], "filter", True),
        (replay.json()["audit"]["id"], "ids", False),
    ]
    assert detail["audit"][1]["params"]["event_ids"] == [event_id]


async def test_errors_go_with_their_event_when_retention_deletes_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    (event_id,) = await add_events(conn, site, 1)
    await conn.execute(
        "INSERT INTO outbox_errors (event_id, attempt, worker, error) VALUES ($1, 1, 'w', 'e')",
        event_id,
    )
    await conn.execute("DELETE FROM outbox WHERE id = $1", event_id)
    assert await conn.fetchval("SELECT count(*) FROM outbox_errors") == 0


async def test_an_unknown_event_is_a_404_problem(client: httpx.AsyncClient) -> None:
    for event_id in ("987654", str(2**53), "0"):
        response = await client.get(f"/v1/ops/outbox/{event_id}")
        assert response.status_code == 404, (event_id, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/outbox-event-not-found"


async def test_filtered_dry_run_lists_the_matches_and_changes_nothing_then_replays_them(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    a, b = await make_site(client), await make_site(client)
    match = await add_events(conn, a, 3)
    await add_events(conn, a, 1, event_type="site.stale")  # other type
    await add_events(conn, a, 1, created=T0 + timedelta(days=3))  # outside the range
    await add_events(conn, a, 1, dead=False)  # retrying, not dead
    await add_events(conn, b, 1)  # other site
    body = {
        "all_dead": True,
        "site_id": a,
        "event_type": "measurements.accepted",
        "created_from": T0.isoformat(),
        "created_to": (T0 + timedelta(days=1)).isoformat(),
    }
    before = await conn.fetch("SELECT * FROM outbox ORDER BY id")
    dry = await client.post("/v1/ops/outbox/replay", json={**body, "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert (dry.json()["event_ids"], dry.json()["replayed"]) == (match, 0)
    assert await conn.fetch("SELECT * FROM outbox ORDER BY id") == before
    same_as_list = await listed(
        client,
        status="dead",
        site_id=a,
        event_type="measurements.accepted",
        **{"from": body["created_from"], "to": body["created_to"]},
    )
    assert sorted(same_as_list) == match

    real = await client.post("/v1/ops/outbox/replay", json=body)
    assert (real.json()["event_ids"], real.json()["replayed"]) == (match, 3)
    requeued = await conn.fetch(
        "SELECT id FROM outbox WHERE dead_at IS NULL AND attempts = 0 ORDER BY id"
    )
    assert [r["id"] for r in requeued] == match
    audits = await conn.fetch(
        "SELECT params, affected, dry_run FROM ops_audit WHERE action = 'outbox.replay' ORDER BY id"
    )
    assert [(r["affected"], r["dry_run"]) for r in audits] == [(3, True), (3, False)]
    assert audits[1]["params"] == {
        "event_ids": None,
        "site_id": a,
        "from": None,
        "to": None,
        "only_dead": True,
        "event_type": "measurements.accepted",
        "created_from": T0.isoformat(),
        "created_to": (T0 + timedelta(days=1)).isoformat(),
    }


@pytest.mark.parametrize(
    "body",
    [
        {"event_ids": [1], "event_type": "site.stale"},
        {"site_id": 1, "created_from": "2026-03-01T00:00:00Z"},
        {"all_dead": True, "event_type": "nope"},
        {"all_dead": True, "created_to": "2026-03-01T00:00:00"},
    ],
)
async def test_a_filter_outside_the_all_dead_mode_is_a_422_changing_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, body: dict[str, Any]
) -> None:
    response = await client.post("/v1/ops/outbox/replay", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/validation-error"
    assert await conn.fetchval("SELECT count(*) FROM ops_audit") == 0


VIEWER = "triage-viewer-token-0123456789abcdef"


@pytest.fixture
async def prod_api(settings: Settings) -> AsyncIterator[RunningApi]:
    configured = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        environment="production",
        admin_tokens=f"wall:viewer:{VIEWER}",
    )
    async with RunningApi(configured) as api:
        yield api


async def test_a_viewer_reads_an_event_but_may_not_replay_and_no_token_reads_nothing(
    prod_api: RunningApi, conn: asyncpg.Connection
) -> None:
    site = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('s', 1) RETURNING id"
    )
    (event_id,) = await add_events(conn, site, 1)
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    async with httpx.AsyncClient(base_url=prod_api.url, timeout=30) as http:
        assert (await http.get(f"/v1/ops/outbox/{event_id}", headers=viewer)).status_code == 200
        assert (await http.get(f"/v1/ops/outbox/{event_id}")).status_code == 401
        body = {"all_dead": True, "site_id": site, "dry_run": True}
        denied = await http.post("/v1/ops/outbox/replay", json=body, headers=viewer)
        assert denied.status_code == 403
        assert denied.json()["type"] == "/problems/forbidden-role"
