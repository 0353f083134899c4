"""Draining the outbox into site aggregates: exact, idempotent, isolated failures, replay."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import MAX_PREC, Decimal, localcontext
from typing import Any

import asyncpg
import httpx
import pytest

from service.drain import DrainConfig, RetryPolicy, drain_batch, drain_until_idle
from service.infra import db
from service.infra.settings import Settings
from service.workers import WorkerState
from tests.integration.helpers import batch, make_site, post_batch, run_cli

ADMIN = {"Authorization": "Bearer dev-admin-token"}
FAST = RetryPolicy(max_attempts=3, base_s=0.001, cap_s=0.001)


BATCHES = "event_type = 'measurements.accepted'"


async def drain_all(db_url: str, settings: Settings) -> int:
    pool = await db.create_pool(settings)
    try:
        config = DrainConfig.from_settings(settings)
        report = await drain_until_idle(pool, config, WorkerState(), trigger="test")
    finally:
        await pool.close()
    return report.applied


async def site_state(conn: asyncpg.Connection, site: int) -> tuple[Any, ...]:
    totals = await conn.fetchrow(
        "SELECT lifetime_kg, year_kg, readings, last_reading_at FROM site_totals WHERE site_id=$1",
        site,
    )
    hours = await conn.fetch(
        "SELECT hour, total_kg, readings FROM site_hourly WHERE site_id = $1 ORDER BY hour", site
    )
    return tuple(totals or ()), tuple(tuple(h) for h in hours)


def expected(sent: dict[tuple[int, datetime], float], site: int) -> tuple[Decimal, dict[Any, Any]]:
    """Each reading as its shortest decimal, added exactly (numeric does not round)."""
    hours: dict[datetime, list[Decimal]] = defaultdict(list)
    for (s, ts), kg in sent.items():
        if s == site:
            hours[ts.replace(minute=0)].append(Decimal(str(kg)))
    with localcontext(prec=MAX_PREC):
        return sum((sum(v, Decimal(0)) for v in hours.values()), Decimal(0)), {
            h: (sum(v, Decimal(0)), len(v)) for h, v in hours.items()
        }


async def test_totals_equal_the_exact_sum_of_unique_readings_hour_by_hour(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    rng = random.Random(7)
    sites = [await make_site(client) for _ in range(3)]
    start = datetime(2026, 1, 10, tzinfo=UTC)
    stored: dict[tuple[int, datetime], float] = {}
    for n in range(30):
        site = rng.choice(sites)
        items: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 40)):
            ts = start + timedelta(minutes=5 * rng.randint(0, 400))
            if any(i["ts"] == ts.isoformat() for i in items):
                continue
            kg = round(rng.uniform(0, 50), 3)
            items.append({"ts": ts.isoformat(), "methane_kg": kg})
        response = await post_batch(client, site, batch(items), key=f"b{n}")
        assert response.status_code == 202
        for item in items:  # the first value stored for a window wins; later ones conflict
            stored.setdefault((site, datetime.fromisoformat(item["ts"])), item["methane_kg"])
        if n % 5 == 0:  # a retry of the same batch, and the same readings under a new key
            await post_batch(client, site, batch(items), key=f"b{n}")
            await post_batch(client, site, batch(items), key=f"b{n}-again")
    assert await drain_all(db_url, settings) == await conn.fetchval(
        f"SELECT count(*) FROM outbox WHERE {BATCHES}"
    )
    for site in sites:
        lifetime, hours = expected(stored, site)
        totals = await conn.fetchrow("SELECT * FROM site_totals WHERE site_id = $1", site)
        assert totals is not None
        assert totals["lifetime_kg"] == lifetime
        assert totals["readings"] == sum(n for _, n in hours.values())
        rows = await conn.fetch("SELECT * FROM site_hourly WHERE site_id = $1", site)
        assert {r["hour"]: (r["total_kg"], r["readings"]) for r in rows} == hours
        view = (await client.get(f"/v1/sites/{site}")).json()
        assert view["lifetime_kg"] == float(lifetime)


async def test_a_reading_counts_as_the_shortest_decimal_of_its_float_in_drain_and_rebuild(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    # Values a float holds only with 16-17 significant digits: what the device sent, and what
    # the API shows back (Python's repr), is the decimal the totals must add. A cast that
    # rounds to 15 digits would count 1/3 as 0.333333333333333. The drain sums an hour of
    # readings with at most 6 decimals as integers, any other hour from the text, and the
    # rebuild always from the text: all three kinds of hour are here, checked both ways.
    site = await make_site(client)
    rng = random.Random(11)
    long = [0.1 + 0.2, 1 / 3, 2 / 3 * 1000, 1e-7, 123456.78901234567, 5e-324]
    long += [rng.uniform(0, 50) for _ in range(30)]
    short = [0.000001, 999999.999999, 123.456, 7.0, 0.1, 0.2]  # one hour, at 7-minute steps
    mixed = [0.25, 1.5, 1 / 7]  # and the next
    kgs = long + short + mixed
    start = datetime(2026, 3, 2, tzinfo=UTC)
    stamps = [start + timedelta(minutes=7 * i) for i in range(len(long))]
    stamps += [start + timedelta(days=1, minutes=7 * i) for i in range(len(short))]
    stamps += [start + timedelta(days=1, hours=1, minutes=7 * i) for i in range(len(mixed))]
    items: list[dict[str, Any]] = [
        {"ts": ts.isoformat(), "methane_kg": kg} for ts, kg in zip(stamps, kgs, strict=True)
    ]
    assert (await post_batch(client, site, batch(items))).status_code == 202
    sent = {(site, datetime.fromisoformat(i["ts"])): i["methane_kg"] for i in items}
    lifetime, hours = expected(sent, site)
    with localcontext(prec=MAX_PREC):  # rounded to 15 digits, these readings add up otherwise
        assert lifetime != sum(Decimal(f"{kg:.15g}") for kg in kgs)
    await drain_all(db_url, settings)
    for rebuild in (False, True):  # drained, then rebuilt from raw readings: the same figures
        if rebuild:
            done = await run_cli(
                "aggregates", "rebuild", "--site", str(site), env={"DATABASE_URL": db_url}
            )
            assert done.returncode == 0, done.stderr
        assert (await site_state(conn, site))[0][:3] == (lifetime, lifetime, len(kgs))
        rows = await conn.fetch("SELECT * FROM site_hourly WHERE site_id = $1", site)
        assert {r["hour"]: (r["total_kg"], r["readings"]) for r in rows} == hours


async def test_many_events_for_one_site_cost_one_recompute(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    for i in range(5):
        ts = datetime(2026, 2, 1, i, tzinfo=UTC).isoformat()
        await post_batch(client, site, batch([{"ts": ts, "methane_kg": 1.5}]))
    await conn.execute("SELECT pg_stat_reset()")
    report = await drain_batch(conn, limit=100, policy=FAST)
    assert (report.claimed, report.applied, report.sites, report.readings) == (5, 5, 1, 5)
    assert len(report.request_ids) == 5
    state = await site_state(conn, site)
    assert state[0][:3] == (Decimal("7.5"), Decimal("7.5"), 5)


async def test_replaying_processed_events_never_changes_totals(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    site = await make_site(client)
    for i in range(3):
        items = [
            {"ts": datetime(2026, 3, 1, i, m, tzinfo=UTC).isoformat(), "methane_kg": 2.125}
            for m in (0, 30)
        ]
        await post_batch(client, site, batch(items))
    await drain_all(db_url, settings)
    before = await site_state(conn, site)
    ids = [r["id"] for r in await conn.fetch(f"SELECT id FROM outbox WHERE {BATCHES} ORDER BY id")]
    # March is a closed month, so each batch also restated its report: replaying those is
    # harmless too (nothing to apply, no second delivery).
    site_ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
    assert len(site_ids) > len(ids)
    for _ in range(3):
        by_ids = await client.post("/v1/ops/outbox/replay", json={"event_ids": ids}, headers=ADMIN)
        assert by_ids.status_code == 200, by_ids.text
        assert by_ids.json()["replayed"] == 3
        await drain_all(db_url, settings)
        by_site = await client.post("/v1/ops/outbox/replay", json={"site_id": site}, headers=ADMIN)
        assert by_site.json()["event_ids"] == site_ids
        await drain_all(db_url, settings)
        assert await site_state(conn, site) == before
    replays = "SELECT count(*) FROM ops_audit WHERE actor = 'dev' AND action = 'outbox.replay'"
    assert await conn.fetchval(replays) == 6


async def test_replay_needs_an_admin_token_and_dry_run_changes_nothing(
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    db_url: str,
    settings: Settings,
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch([{"ts": "2026-03-01T00:00:00Z", "methane_kg": 1.0}]))
    await drain_all(db_url, settings)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "dev-admin-token"}):
        denied = await anon_client.post(
            "/v1/ops/outbox/replay", json={"site_id": site}, headers=headers
        )
        assert denied.status_code == 401
        assert denied.json()["type"] == "/problems/unauthorized"
        assert "dev-admin-token" not in denied.text
    dry = await client.post(
        "/v1/ops/outbox/replay", json={"site_id": site, "dry_run": True}, headers=ADMIN
    )
    body = dry.json()
    assert (body["dry_run"], body["replayed"], len(body["event_ids"])) == (True, 0, 2)
    assert body["audit"]["actor"] == "dev"
    assert body["audit"]["dry_run"] is True
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE processed_at IS NULL") == 0
    bad = await client.post(
        "/v1/ops/outbox/replay",
        json={"site_id": site, "all_dead": False, "event_ids": [1]},
        headers=ADMIN,
    )
    assert bad.status_code == 422
    real = "SELECT count(*) FROM ops_audit WHERE NOT dry_run AND action = 'outbox.replay'"
    assert await conn.fetchval(real) == 0


async def test_poison_event_backs_off_dead_letters_and_replays_after_the_fix(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    good, bad = await make_site(client), await make_site(client)
    await conn.execute(
        f"""
        CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.site_id = {bad} THEN RAISE EXCEPTION 'poisoned bucket'; END IF;
        RETURN NEW; END $$;
        CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON site_hourly
        FOR EACH ROW EXECUTE FUNCTION poison();
        """
    )
    items = [{"ts": "2026-04-01T00:00:00Z", "methane_kg": 3.5}]
    await post_batch(client, bad, batch(items))
    await post_batch(client, good, batch(items))
    first = await drain_batch(conn, limit=100, policy=FAST)
    assert (first.applied, first.failed, first.dead) == (1, 1, 0)
    event = await conn.fetchrow("SELECT * FROM outbox WHERE site_id = $1", bad)
    assert event is not None
    assert event["attempts"] == 1
    assert "poisoned bucket" in event["last_error"]
    assert event["available_at"] > event["created_at"]
    assert await conn.fetchval("SELECT lifetime_kg FROM site_totals WHERE site_id=$1", good) == 3.5
    # Meanwhile the good site keeps draining.
    await post_batch(client, good, batch([{"ts": "2026-04-01T01:00:00Z", "methane_kg": 1.0}]))
    dead_total = 0
    for _ in range(5):
        await conn.execute("UPDATE outbox SET available_at = now() WHERE processed_at IS NULL")
        dead_total += (await drain_batch(conn, limit=100, policy=FAST)).dead
    assert dead_total == 1
    event = await conn.fetchrow("SELECT * FROM outbox WHERE site_id = $1", bad)
    assert event is not None
    assert (event["attempts"], event["dead_at"] is not None) == (3, True)
    assert await conn.fetchval("SELECT lifetime_kg FROM site_totals WHERE site_id=$1", good) == 4.5
    queue = (await client.get("/v1/ops/queue")).json()
    assert (queue["dead"], queue["pending"]) == (1, 0)
    dead_list = (await client.get("/v1/ops/outbox", params={"status": "dead"})).json()["items"]
    assert [e["id"] for e in dead_list] == [event["id"]]
    assert dead_list[0]["attempts"] == 3
    await conn.execute("DROP TRIGGER poison ON site_hourly")
    replay = await client.post("/v1/ops/outbox/replay", json={"all_dead": True}, headers=ADMIN)
    assert replay.json()["event_ids"] == [event["id"]]
    await drain_all(db_url, settings)
    assert await conn.fetchval("SELECT lifetime_kg FROM site_totals WHERE site_id=$1", bad) == 3.5
    assert (await client.get("/v1/ops/queue")).json()["dead"] == 0


async def test_malformed_payload_is_poison_for_its_event_only(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch([{"ts": "2026-04-01T00:00:00Z", "methane_kg": 2.0}]))
    await conn.execute(
        "INSERT INTO outbox (event_type, site_id, payload) VALUES "
        "('measurements.accepted', $1, '{\"hours\": \"nonsense\"}'), "
        "('something.else', $1, '{}')",
        site,
    )
    report = await drain_batch(conn, limit=100, policy=FAST)
    assert (report.applied, report.failed) == (1, 2)
    assert await conn.fetchval("SELECT lifetime_kg FROM site_totals WHERE site_id=$1", site) == 2


async def test_late_batch_and_year_boundary_land_in_the_right_buckets(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    site = await make_site(client)
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    new_year = datetime(now.year, 1, 1, tzinfo=UTC)
    await post_batch(client, site, batch([{"ts": this_month.isoformat(), "methane_kg": 10.0}]))
    await drain_all(db_url, settings)
    late = [
        {"ts": (last_month + timedelta(hours=5, minutes=30)).isoformat(), "methane_kg": 1.25},
        {"ts": (new_year - timedelta(minutes=30)).isoformat(), "methane_kg": 100.0},
        {"ts": new_year.isoformat(), "methane_kg": 0.5},
    ]
    await post_batch(client, site, batch(late))
    await drain_all(db_url, settings)
    totals = await conn.fetchrow("SELECT * FROM site_totals WHERE site_id = $1", site)
    assert totals is not None
    this_year = Decimal("10") + Decimal("0.5")
    if last_month.year == now.year:
        this_year += Decimal("1.25")
    assert totals["lifetime_kg"] == Decimal("111.75")
    assert totals["year_kg"] == this_year  # 31 Dec 23:30 counts in the previous year
    assert totals["year"] == now.year
    hourly = await conn.fetch("SELECT hour, total_kg FROM site_hourly WHERE site_id=$1", site)
    hours: dict[datetime, Decimal] = {r["hour"]: r["total_kg"] for r in hourly}
    assert hours[new_year - timedelta(hours=1)] == Decimal(100)
    assert hours[last_month + timedelta(hours=5)] == Decimal("1.25")
    view = (await client.get(f"/v1/sites/{site}")).json()
    assert view["year_kg"] == float(this_year)


async def test_rebuild_recomputes_every_bucket_from_raw_data(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    site = await make_site(client)
    items = [
        {"ts": datetime(2026, 5, 1, h, tzinfo=UTC).isoformat(), "methane_kg": 1.5} for h in range(6)
    ]
    await post_batch(client, site, batch(items))
    await drain_all(db_url, settings)
    good = await site_state(conn, site)
    await conn.execute("UPDATE site_hourly SET total_kg = 999 WHERE site_id = $1", site)
    await conn.execute(
        "UPDATE site_totals SET lifetime_kg = 0, readings = 0 WHERE site_id=$1", site
    )
    done = await run_cli("aggregates", "rebuild", "--site", str(site), env={"DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    assert await site_state(conn, site) == good
    audit = await conn.fetchrow("SELECT * FROM ops_audit ORDER BY id DESC LIMIT 1")
    assert audit is not None
    assert (audit["actor"], audit["action"], audit["affected"]) == ("cli", "aggregates.rebuild", 1)


async def test_cli_replay_dry_run_and_real(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch([{"ts": "2026-05-01T00:00:00Z", "methane_kg": 1.0}]))
    await drain_all(db_url, settings)
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    dry = await run_cli("outbox", "replay", "--site", str(site), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE processed_at IS NULL") == 0
    real = await run_cli("outbox", "replay", "--site", str(site), env=env)
    assert real.returncode == 0
    # The batch, and the restatement of May (closed) that it caused.
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE processed_at IS NULL") == 2
    assert await conn.fetchval("SELECT count(*) FROM ops_audit WHERE action = 'outbox.replay'") == 2


async def test_hourly_series_and_outbox_paging(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str, settings: Settings
) -> None:
    site = await make_site(client)
    for h in range(4):
        ts = datetime(2026, 6, 1, h, 15, tzinfo=UTC).isoformat()
        await post_batch(client, site, batch([{"ts": ts, "methane_kg": h + 0.5}]))
    pending = (await client.get("/v1/ops/queue")).json()
    assert pending["pending"] == 4
    await drain_all(db_url, settings)
    series = await client.get(
        f"/v1/sites/{site}/hourly",
        params={"from": "2026-06-01T01:00:00Z", "to": "2026-06-01T03:00:00Z"},
    )
    assert [(h["hour"], h["total_kg"]) for h in series.json()["hours"]] == [
        ("2026-06-01T01:00:00Z", 1.5),
        ("2026-06-01T02:00:00Z", 2.5),
    ]
    # 4 batches and (June being closed) a report restatement (one per site-month per claim).
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 5
    first = (await client.get("/v1/ops/outbox", params={"limit": 5})).json()
    second = (
        await client.get("/v1/ops/outbox", params={"limit": 5, "before": first["next_before"]})
    ).json()
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 5
    assert second["next_before"] is None
    only = (await client.get("/v1/ops/outbox", params={"event_type": "report.restated"})).json()
    assert [e["event_type"] for e in only["items"]] == ["report.restated"]
    bad = await client.get("/v1/ops/outbox", params={"event_type": "nope"})
    assert bad.status_code == 422, bad.text
    assert [(e["in"], e["name"]) for e in bad.json()["errors"]] == [("query", "event_type")]
    assert (await client.get("/v1/sites/999999/hourly")).status_code == 404


@pytest.mark.parametrize("status", ["pending", "backoff", "dead", "processed", "all"])
async def test_outbox_status_filter_is_accepted(client: httpx.AsyncClient, status: str) -> None:
    response = await client.get("/v1/ops/outbox", params={"status": status})
    assert response.status_code == 200
    assert (await client.get("/v1/ops/outbox", params={"status": "nope"})).status_code == 422
