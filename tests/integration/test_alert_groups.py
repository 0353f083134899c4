"""Alerts that don't drown people: grouped by site and kind (count, open, first and last seen),
filtered by site and kind, acknowledged in bulk by ids or by group (audited, idempotent, the
single acknowledgement kept), bad input a 422 that changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.integration.helpers import make_site

NOW = datetime.now(UTC).replace(microsecond=0)


async def raise_alert(
    conn: asyncpg.Connection, site: int, kind: str, hours_ago: int, *, acked: bool = False
) -> int:
    alert_id: int = await conn.fetchval(
        "INSERT INTO alerts (site_id, kind, dedupe_key, details, raised_at, acknowledged_at,"
        " acknowledged_by) VALUES ($1, $2, $3, '{}', $4, $5, $6) RETURNING id",
        site,
        kind,
        f"{kind}:{hours_ago}",
        NOW - timedelta(hours=hours_ago),
        NOW if acked else None,
        "someone" if acked else None,
    )
    return alert_id


async def arrange(client: httpx.AsyncClient, conn: asyncpg.Connection) -> dict[str, Any]:
    one, two = await make_site(client), await make_site(client)
    ids = {
        "one_leak": [await raise_alert(conn, one, "leak", h) for h in (30, 20, 10)],
        "one_stale": [await raise_alert(conn, one, "stale", 5)],
        "two_leak": [
            await raise_alert(conn, two, "leak", 40, acked=True),
            await raise_alert(conn, two, "leak", 2),
        ],
    }
    return {"one": one, "two": two, **ids}


def group(
    site: int, kind: str, count: int, open_n: int, first_h: int, last_h: int
) -> dict[str, Any]:
    return {
        "site_id": site,
        "kind": kind,
        "count": count,
        "open": open_n,
        "first_raised_at": (NOW - timedelta(hours=first_h)).isoformat().replace("+00:00", "Z"),
        "last_raised_at": (NOW - timedelta(hours=last_h)).isoformat().replace("+00:00", "Z"),
    }


async def groups(client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/alerts/groups{query}")
    assert response.status_code == 200, response.text
    assert response.json()["truncated"] is False
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_alerts_group_by_site_and_kind_with_counts_and_first_and_last_seen(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    a = await arrange(client, conn)
    one, two = a["one"], a["two"]
    assert await groups(client, "?status=all") == [
        group(two, "leak", 2, 1, 40, 2),
        group(one, "stale", 1, 1, 5, 5),
        group(one, "leak", 3, 3, 30, 10),
    ]
    assert await groups(client, "") == [  # open by default: the acknowledged one not counted
        group(two, "leak", 1, 1, 2, 2),
        group(one, "stale", 1, 1, 5, 5),
        group(one, "leak", 3, 3, 30, 10),
    ]
    assert await groups(client, "?kind=leak&status=all") == [
        group(two, "leak", 2, 1, 40, 2),
        group(one, "leak", 3, 3, 30, 10),
    ]
    assert await groups(client, f"?site_id={one}&kind=stale") == [group(one, "stale", 1, 1, 5, 5)]
    truncated = (await client.get("/v1/alerts/groups?status=all&limit=2")).json()
    assert len(truncated["items"]) == 2 and truncated["truncated"] is True

    # The list filters the same way (the site page's alerts card asks by site_id).
    page = (await client.get(f"/v1/alerts?site_id={one}&status=all")).json()
    assert {x["site_id"] for x in page["items"]} == {one} and len(page["items"]) == 4
    assert page["counts"] == {"open": 4, "acknowledged": 0}
    page = (await client.get(f"/v1/alerts?site_id={two}&kind=leak&status=all")).json()
    assert [x["id"] for x in page["items"]] == a["two_leak"][::-1]
    assert page["counts"] == {"open": 1, "acknowledged": 1}
    stale = (await client.get("/v1/alerts?kind=stale")).json()["items"]
    assert [x["id"] for x in stale] == a["one_stale"]


async def audits(conn: asyncpg.Connection) -> list[tuple[str, int, Any]]:
    rows = await conn.fetch(
        "SELECT actor, affected, params FROM ops_audit WHERE action = 'alerts.ack' ORDER BY id"
    )
    return [(r["actor"], r["affected"], r["params"]) for r in rows]


async def ack(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/alerts/ack", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_bulk_acknowledge_by_group_or_ids_is_audited_and_idempotent(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    a = await arrange(client, conn)
    one = a["one"]
    for body, pointer in [
        ({}, ""),
        ({"alert_ids": [a["one_stale"][0]], "kind": "leak"}, ""),
        ({"kind": "smoke"}, "/kind"),
        ({"alert_ids": []}, "/alert_ids"),
        ({"alert_ids": [0]}, "/alert_ids/0"),
        ({"site_id": "x"}, "/site_id"),
    ]:
        bad = await client.post("/v1/alerts/ack", json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["type"] == "/problems/validation-error"
        assert bad.json()["errors"][0]["pointer"] == pointer, (body, bad.json())
    for query, name in [("?kind=smoke", "kind"), ("?status=closed", "status")]:
        for path in ("/v1/alerts", "/v1/alerts/groups"):
            bad = await client.get(path + query)
            assert bad.status_code == 422
            assert [(e["in"], e["name"]) for e in bad.json()["errors"]] == [("query", name)]
    assert (await anon_client.post("/v1/alerts/ack", json={"kind": "leak"})).status_code == 401
    open_q = "SELECT count(*) FROM alerts WHERE acknowledged_at IS NULL"
    assert await conn.fetchval(open_q) == 5 and await audits(conn) == []

    answer = await ack(client, {"site_id": one, "kind": "leak"})
    assert (answer["acknowledged"], answer["alert_ids"]) == (3, a["one_leak"])
    assert answer["audit"]["action"] == "alerts.ack" and answer["audit"]["affected"] == 3
    assert (await ack(client, {"site_id": one, "kind": "leak"}))["acknowledged"] == 0
    # By ids: an acknowledged one and an unknown one are left as they are.
    ids = [a["one_stale"][0], a["one_leak"][0], a["two_leak"][0], 987654]
    assert (await ack(client, {"alert_ids": ids}))["alert_ids"] == a["one_stale"]
    assert (await ack(client, {"kind": "leak"}))["alert_ids"] == a["two_leak"][1:]
    assert await conn.fetchval(open_q) == 0
    first = await conn.fetchrow(
        "SELECT acknowledged_by FROM alerts WHERE id = $1", a["two_leak"][0]
    )
    assert first is not None
    assert first["acknowledged_by"] == "someone"  # the first acknowledgement kept
    assert await audits(conn) == [
        ("dev", 3, {"alert_ids": None, "site_id": one, "kind": "leak"}),
        ("dev", 0, {"alert_ids": None, "site_id": one, "kind": "leak"}),
        ("dev", 1, {"alert_ids": ids, "site_id": None, "kind": None}),
        ("dev", 1, {"alert_ids": None, "site_id": None, "kind": "leak"}),
    ]
    assert await groups(client, "") == []
    assert [g["open"] for g in await groups(client, "?status=all")] == [0, 0, 0]

    # Today's single acknowledgement still answers as before.
    single = await client.post(f"/v1/alerts/{a['one_stale'][0]}/ack")
    assert single.status_code == 200 and single.json()["acknowledged_by"] == "dev"
    assert (await client.post("/v1/alerts/987654/ack")).status_code == 404
