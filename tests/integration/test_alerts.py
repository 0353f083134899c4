"""Alerts fire exactly once per crossing: under replays, rebuilds and concurrent drains."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from service import alerts
from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.infra.settings import Settings
from tests.integration.helpers import batch, make_site, post_batch, run_cli

POLICY = RetryPolicy()


async def drain(conn: asyncpg.Connection) -> None:
    while (await drain_batch(conn, limit=100, policy=POLICY)).claimed:
        pass


def recent(hours_ago: int, kg: float) -> dict[str, object]:
    ts = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    return {"ts": ts.isoformat(), "methane_kg": kg}


async def test_threshold_crossings_fire_once_across_replays_rebuilds_and_concurrent_drains(
    client: httpx.AsyncClient, conn: asyncpg.Connection, settings: Settings, db_url: str
) -> None:
    site = await make_site(client, limit_kg=10.0)
    await post_batch(client, site, batch([recent(3, 4.0), recent(2, 4.5)]))  # 85 %
    await drain(conn)
    rows = await conn.fetch("SELECT dedupe_key FROM alerts WHERE site_id = $1", site)
    year = datetime.now(UTC).year
    assert [r["dedupe_key"] for r in rows] == [f"threshold:{year}:80"]
    await post_batch(client, site, batch([recent(1, 2.0)]))  # 105 %
    await drain(conn)
    for _ in range(3):  # replays, concurrent drainers and a rebuild change nothing
        await client.post("/v1/ops/outbox/replay", json={"site_id": site})
        others = [await db.connect(db_url) for _ in range(2)]
        try:
            await asyncio.gather(*(drain(c) for c in others))
        finally:
            for c in others:
                await c.close()
        done = await run_cli(
            "aggregates", "rebuild", "--site", str(site), env={"DATABASE_URL": db_url}
        )
        assert done.returncode == 0, done.stderr
    keys = sorted(
        r["dedupe_key"] for r in await conn.fetch("SELECT * FROM alerts WHERE site_id=$1", site)
    )
    assert keys == [f"threshold:{year}:100", f"threshold:{year}:80"]
    listed = (await client.get("/v1/alerts", params={"site_id": site})).json()["items"]
    assert [a["details"]["threshold_percent"] for a in listed] == [100.0, 80.0]


async def test_a_window_above_the_leak_rate_raises_one_leak_alert_per_hour(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = await client.post(
        "/v1/sites", json={"name": "leaky", "emission_limit_kg": 1e9, "reporting_interval_s": 60}
    )
    site = created.json()["id"]
    # 2 kg in a 1-minute window = 120 kg/h (above 100); 1 kg = 60 kg/h (below).
    await post_batch(client, site, batch([recent(5, 2.0), recent(4, 1.0)]))
    await drain(conn)
    await client.post("/v1/ops/outbox/replay", json={"site_id": site})
    await drain(conn)
    rows = await conn.fetch("SELECT kind, details FROM alerts WHERE site_id = $1", site)
    assert [r["kind"] for r in rows] == ["leak"]
    assert rows[0]["details"]["peak_rate_kg_h"] == 120.0


async def test_stale_sites_alert_once_per_quiet_spell(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch([recent(10, 1.0)]))
    await drain(conn)
    first = await alerts.raise_stale(conn, rules=alerts.AlertRules(stale_after=timedelta(hours=6)))
    again = await alerts.raise_stale(conn, rules=alerts.AlertRules(stale_after=timedelta(hours=6)))
    assert len(first) == 1
    assert again == []
    await post_batch(client, site, batch([recent(8, 1.0)]))  # late data: a new quiet spell
    await drain(conn)
    later = await alerts.raise_stale(conn, rules=alerts.AlertRules(stale_after=timedelta(hours=6)))
    assert len(later) == 1


async def test_alerts_are_acknowledged_by_an_operator(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client, limit_kg=1.0)
    await post_batch(client, site, batch([recent(2, 5.0)]))
    await drain(conn)
    open_alerts = (await client.get("/v1/alerts")).json()["items"]
    assert len(open_alerts) == 2
    alert_id = open_alerts[0]["id"]
    assert (await anon_client.post(f"/v1/alerts/{alert_id}/ack")).status_code == 401
    acked = await client.post(f"/v1/alerts/{alert_id}/ack")
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "dev"
    assert len((await client.get("/v1/alerts")).json()["items"]) == 1
    done = (await client.get("/v1/alerts", params={"status": "acknowledged"})).json()["items"]
    assert [a["id"] for a in done] == [alert_id]
    assert (await client.post("/v1/alerts/999999/ack")).status_code == 404
    # Counts cover every alert, whatever the page size; per site when one is given.
    page = (await client.get("/v1/alerts", params={"limit": 1})).json()
    assert page["counts"] == {"open": 1, "acknowledged": 1}
    other = await make_site(client)
    page = (await client.get("/v1/alerts", params={"site_id": other})).json()
    assert (page["items"], page["counts"]) == ([], {"open": 0, "acknowledged": 0})
