"""Late data for a closed month restates its report and raises threshold alerts once, however
often it is replayed or rebuilt; subscribers hear of both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from service.alerts import AlertRules
from service.delivery import Deliverer
from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.infra.settings import Settings
from tests.integration.helpers import batch, make_site, post_batch, run_cli
from tests.integration.receiver import Receiver

ADMIN = {"Authorization": "Bearer dev-admin-token"}


async def drain(conn: asyncpg.Connection, rules: AlertRules | None = None) -> None:
    policy = RetryPolicy()
    while (await drain_batch(conn, limit=100, policy=policy, rules=rules or AlertRules())).claimed:
        pass


def closed_month() -> datetime:
    """The first instant of the month before last (closed under any grace below a month)."""
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=32)).replace(day=1)


def items(month: datetime, day: int, kgs: list[float]) -> list[dict[str, object]]:
    start = month + timedelta(days=day)
    return [
        {"ts": (start + timedelta(hours=i)).isoformat(), "methane_kg": kg}
        for i, kg in enumerate(kgs)
    ]


async def test_a_late_batch_pushing_a_closed_month_over_the_limit_restates_it_and_alerts_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    receiver = Receiver().start()
    try:
        sub = await client.post(
            "/v1/subscriptions",
            json={
                "url": receiver.url,
                "event_types": ["report.restated", "site.threshold_crossed"],
            },
            headers=ADMIN,
        )
        secret = sub.json()["secret"]
        month = closed_month()
        site = await make_site(client, limit_kg=10.0)

        # While the month was still open (a grace longer than its age): no restatement.
        await post_batch(client, site, batch(items(month, 3, [3.0, 3.0])), key="on-time")
        await drain(conn, AlertRules(report_grace=timedelta(days=400)))
        assert await conn.fetchval("SELECT count(*) FROM report_restatements") == 0
        assert await conn.fetchval("SELECT count(*) FROM alerts") == 0  # 60 %

        # The month is closed now; a late batch takes it (and its year) to 110 %.
        await post_batch(client, site, batch(items(month, 9, [2.0, 3.0])), key="late")
        await drain(conn)
        for _ in range(2):  # replays, drains and rebuilds change nothing more
            await client.post("/v1/ops/outbox/replay", json={"site_id": site}, headers=ADMIN)
            await drain(conn)
            done = await run_cli(
                "aggregates", "rebuild", "--site", str(site), env={"DATABASE_URL": db_url}
            )
            assert done.returncode == 0, done.stderr

        rows = await conn.fetch("SELECT * FROM report_restatements")
        assert [(r["site_id"], r["month"], r["delta_kg"], r["delta_readings"]) for r in rows] == [
            (site, month.date(), 5, 2)
        ]
        keys = sorted(r["dedupe_key"] for r in await conn.fetch("SELECT dedupe_key FROM alerts"))
        assert keys == [f"threshold:{month.year}:100", f"threshold:{month.year}:80"]
        events = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE event_type <> 'measurements.accepted'"
            " ORDER BY id"
        )
        assert sorted(e["event_type"] for e in events) == [
            "report.restated",
            "site.threshold_crossed",
            "site.threshold_crossed",
        ]
        restated = next(e["payload"] for e in events if e["event_type"] == "report.restated")
        assert restated["period_start"] == month.date().isoformat()
        assert (restated["delta_kg"], restated["delta_readings"]) == (5.0, 2)

        report = await client.get(
            f"/v1/sites/{site}/reports",
            params={"period": "month", "from": f"{month:%Y-%m}", "to": f"{month:%Y-%m}"},
        )
        assert report.status_code == 200, report.text
        (only,) = report.json()["reports"]
        assert (only["total_kg"], only["restatements"], only["closed"]) == (11.0, 1, True)
        assert only["last_restated_at"] is not None

        pool = await db.create_pool(settings)
        try:
            await Deliverer(pool, settings).drain()
        finally:
            await pool.close()
        verifier = Webhook(secret)
        got = sorted(verifier.verify(r.body, r.headers)["type"] for r in receiver.received)
        assert got == ["report.restated", "site.threshold_crossed", "site.threshold_crossed"]
    finally:
        receiver.stop()


async def test_late_data_for_another_year_raises_that_years_thresholds_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    last_year = datetime.now(UTC).year - 1
    site = await make_site(client, limit_kg=10.0)
    december = datetime(last_year, 12, 1, tzinfo=UTC)
    await post_batch(client, site, batch(items(december, 0, [4.0, 5.0])), key="a")  # 90 %
    await drain(conn)
    await post_batch(client, site, batch(items(december, 5, [2.0])), key="b")  # 110 %
    await drain(conn)
    await client.post("/v1/ops/outbox/replay", json={"site_id": site}, headers=ADMIN)
    await drain(conn)
    rows = await conn.fetch("SELECT dedupe_key, details FROM alerts ORDER BY id")
    assert [r["dedupe_key"] for r in rows] == [
        f"threshold:{last_year}:80",
        f"threshold:{last_year}:100",
    ]
    assert [r["details"]["year_kg"] for r in rows] == [9.0, 11.0]
    # The totals row follows the current year: last year's readings are not in its figure.
    assert await conn.fetchval("SELECT year_kg FROM site_totals WHERE site_id = $1", site) == 0
