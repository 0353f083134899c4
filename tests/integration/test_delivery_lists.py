"""Webhook deliveries as ops see them: listed per subscription and across subscriptions, by
status and event type, keyset paged; replayed in bulk by ids or by filter, a dry run changing
nothing and a replay requeueing exactly the selection, every call audited; bad input 422."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.delivery import Deliverer
from service.infra import db
from service.infra.settings import Settings
from tests.integration.helpers import make_site
from tests.integration.receiver import Receiver
from tests.integration.test_delivery import (
    ADMIN,
    FAST,
    drain,
    send_batches,
    settings_fields,
    subscribe,
)

TYPES = ["batch.accepted", "site.threshold_crossed"]


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return Settings.from_env({}, **{**settings_fields(settings), **FAST})


@pytest.fixture
async def pool(fast: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(fast)
    yield p
    await p.close()


THRESHOLD = "site.threshold_crossed"


async def arrange(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
    failing: Receiver,
    good: Receiver,
) -> tuple[int, int]:
    """Two subscriptions to 3 batches and 2 threshold crossings: the failing one's five
    deliveries dead after one attempt, the good one's five delivered."""
    a = (await subscribe(client, failing.url, TYPES))["subscription"]["id"]
    b = (await subscribe(client, good.url, TYPES))["subscription"]["id"]
    site = await make_site(client, limit_kg=2.0)
    await send_batches(client, site, 3)  # 3 kg each: past 80 % and 100 % of 2 kg
    await drain(conn)
    once = Settings.from_env({}, **{**settings_fields(fast), "delivery_max_attempts": 1})
    await Deliverer(pool, once).drain()
    return a, b


async def deliveries(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_deliveries_filter_by_status_and_type_and_page_by_keyset(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, fast: Settings
) -> None:
    failing, good = Receiver(mode="fail").start(), Receiver().start()
    try:
        a, b = await arrange(client, conn, pool, fast, failing, good)
    finally:
        failing.stop()
        good.stop()
    dead_batches = await deliveries(
        client, f"/v1/subscriptions/{a}/deliveries?status=dead&event_type=batch.accepted"
    )
    assert [(d["status"], d["event_type"]) for d in dead_batches] == [
        ("dead", "batch.accepted")
    ] * 3
    assert await deliveries(client, f"/v1/subscriptions/{b}/deliveries?status=dead") == []
    delivered = await deliveries(client, "/v1/ops/deliveries?status=delivered")
    assert {d["subscription_id"] for d in delivered} == {b} and len(delivered) == 5
    dead_thresholds = await deliveries(
        client, f"/v1/ops/deliveries?status=dead&event_type={THRESHOLD}"
    )
    assert [(d["subscription_id"], d["event_type"]) for d in dead_thresholds] == [
        (a, THRESHOLD)
    ] * 2
    one_sub = await deliveries(client, f"/v1/ops/deliveries?subscription_id={a}&status=all")
    assert {d["subscription_id"] for d in one_sub} == {a} and len(one_sub) == 5

    # Keyset paging: two at a time, newest first, every delivery once.
    seen: list[int] = []
    before = ""
    while True:
        page = (await client.get(f"/v1/ops/deliveries?limit=2{before}")).json()
        seen += [d["id"] for d in page["items"]]
        if page["next_before"] is None:
            break
        assert page["next_before"] == page["items"][-1]["id"]
        before = f"&before={page['next_before']}"
    all_ids = [r["id"] for r in await conn.fetch("SELECT id FROM deliveries ORDER BY id DESC")]
    assert seen == all_ids and len(seen) == 10

    for path, name in [
        ("/v1/ops/deliveries?status=lost", "status"),
        ("/v1/ops/deliveries?event_type=batch.acepted", "event_type"),
        ("/v1/ops/deliveries?before=0", "before"),
        ("/v1/ops/deliveries?limit=501", "limit"),
        ("/v1/ops/deliveries?subscription_id=x", "subscription_id"),
        (f"/v1/subscriptions/{a}/deliveries?event_type=nope", "event_type"),
    ]:
        bad = await client.get(path)
        assert bad.status_code == 422, (path, bad.text)
        assert bad.json()["type"] == "/problems/validation-error"
        assert [(e.get("in"), e.get("name")) for e in bad.json()["errors"]] == [("query", name)]
    missing = await client.get("/v1/ops/deliveries?subscription_id=999")
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/subscription-not-found"


async def snapshot(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, attempts, available_at, delivered_at, dead_at FROM deliveries ORDER BY id"
    )


async def replay(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/ops/deliveries/replay", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_bulk_replay_dry_run_changes_nothing_and_replay_requeues_exactly_those(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, fast: Settings
) -> None:
    failing, good = Receiver(mode="fail").start(), Receiver().start()
    try:
        a, _ = await arrange(client, conn, pool, fast, failing, good)
        dead = await deliveries(client, f"/v1/subscriptions/{a}/deliveries?status=dead")
        by_type = {t: sorted(d["id"] for d in dead if d["event_type"] == t) for t in TYPES}
        before = await snapshot(conn)

        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        dry_runs: list[tuple[dict[str, Any], list[int]]] = [
            ({"delivery_ids": by_type["batch.accepted"][:2]}, by_type["batch.accepted"][:2]),
            (
                {"all_dead": True, "subscription_id": a, "event_type": THRESHOLD},
                by_type[THRESHOLD],
            ),
            ({"all_dead": True, "event_type": THRESHOLD, "from": hour_ago}, by_type[THRESHOLD]),
            ({"all_dead": True, "from": tomorrow}, []),
            ({"all_dead": True, "from": tomorrow, "to": hour_ago}, []),  # an empty range
            ({"subscription_id": a, "event_type": "batch.accepted"}, by_type["batch.accepted"]),
        ]
        for body, expected in dry_runs:
            answer = await replay(client, {**body, "dry_run": True})
            assert (answer["delivery_ids"], answer["replayed"]) == (expected, 0), body
            assert answer["audit"]["dry_run"] is True
            assert answer["audit"]["affected"] == len(expected)
        assert await snapshot(conn) == before  # dry runs change nothing

        chosen = by_type["batch.accepted"][:2]
        answer = await replay(client, {"delivery_ids": chosen})
        assert (answer["delivery_ids"], answer["replayed"]) == (chosen, 2)
        after = {r["id"]: r for r in await snapshot(conn)}
        for row in before:
            now = after[row["id"]]
            if row["id"] in chosen:
                assert (now["attempts"], now["dead_at"]) == (0, None)
            else:
                assert now == row
        failing.mode = "ok"
        await Deliverer(pool, fast).drain()
        event_of = {d["id"]: f"evt_{d['event_id']}" for d in dead}
        assert sorted(failing.event_ids()) == sorted(event_of[i] for i in chosen)

        answer = await replay(client, {"all_dead": True, "event_type": THRESHOLD})
        assert answer["delivery_ids"] == by_type[THRESHOLD]
        await Deliverer(pool, fast).drain()
        assert len(failing.event_ids()) == 4
    finally:
        failing.stop()
        good.stop()

    audits = await conn.fetch(
        "SELECT params, affected, dry_run FROM ops_audit WHERE action = 'deliveries.replay'"
        " ORDER BY id"
    )
    assert len(audits) == len(dry_runs) + 2
    assert audits[1]["params"] == {
        "delivery_ids": None,
        "subscription_id": a,
        "only_dead": True,
        "event_type": THRESHOLD,
        "from": None,
        "to": None,
    }
    assert [(r["affected"], r["dry_run"]) for r in audits[-2:]] == [(2, False), (2, False)]

    snap = await snapshot(conn)
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"delivery_ids": [1], "event_type": "batch.accepted"}, "/delivery_ids"),
        ({"all_dead": True, "event_type": "batch.acepted"}, "/event_type"),
        ({"all_dead": True, "from": "yesterday"}, "/from"),
        ({"event_type": THRESHOLD}, ""),
        ({"delivery_ids": []}, "/delivery_ids"),
    ]
    for body, pointer in invalid:
        bad = await client.post("/v1/ops/deliveries/replay", json=body, headers=ADMIN)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["type"] == "/problems/validation-error"
        assert bad.json()["errors"][0]["pointer"] == pointer, (body, bad.json())
    assert await snapshot(conn) == snap
    assert await conn.fetchval(
        "SELECT count(*) FROM ops_audit WHERE action = 'deliveries.replay'"
    ) == len(audits)
