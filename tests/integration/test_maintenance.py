"""Retention and partition maintenance: bounded deletes, nothing live touched, rows moved."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx

from service import maintenance
from tests.integration.helpers import batch, make_site, post_batch, run_cli


async def test_retention_deletes_only_old_processed_events_and_expired_keys(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    for i in range(4):
        ts = datetime(2026, 1, 1, i, tzinfo=UTC).isoformat()
        await post_batch(client, site, batch([{"ts": ts, "methane_kg": 1.0}]), key=f"k{i}")
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
    # old and processed / old but dead / old but pending / recent and processed
    await conn.execute(
        "UPDATE outbox SET processed_at = now() - interval '30 days' WHERE id = $1", ids[0]
    )
    await conn.execute(
        "UPDATE outbox SET dead_at = now(), created_at = now() - interval '30 days' WHERE id = $1",
        ids[1],
    )
    await conn.execute(
        "UPDATE outbox SET created_at = now() - interval '30 days' WHERE id = $1", ids[2]
    )
    await conn.execute("UPDATE outbox SET processed_at = now() WHERE id = $1", ids[3])
    await conn.execute(
        "UPDATE ingest_requests SET expires_at = now() - interval '1 s' WHERE key IN ('k0', 'k1')"
    )
    report = await maintenance.apply_retention(conn, outbox_days=7, batch=1)
    assert (report.outbox_deleted, report.keys_deleted) == (1, 2)
    assert [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")] == ids[1:]
    keys = [r["key"] for r in await conn.fetch("SELECT key FROM ingest_requests ORDER BY key")]
    assert keys == ["k2", "k3"]


async def test_maintain_cli_creates_partitions_and_moves_default_rows(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str
) -> None:
    site = await make_site(client)
    now = datetime.now(UTC)
    ahead = datetime(now.year + (now.month + 5 > 12), (now.month + 4) % 12 + 1, 1, tzinfo=UTC)
    # A reading five months ahead is outside the partitions migrate creates; allow the future.
    await conn.execute(
        "INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id) "
        "VALUES ($1, $2, 1.5, 'd', gen_random_uuid())",
        site,
        ahead,
    )
    part = await conn.fetchval("SELECT tableoid::regclass::text FROM measurements")
    assert part == "measurements_default"
    # Drop a partition ahead so maintenance has one to create.
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    await conn.execute(f"DROP TABLE measurements_{nxt:%Y_%m}")
    done = await run_cli("maintain", env={"DATABASE_URL": db_url, "LOG_JSON": "true"})
    assert done.returncode == 0, done.stderr
    assert f'"{nxt:%Y-%m}"' in done.stdout
    assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"measurements_{nxt:%Y_%m}")
    # The row five months ahead stays where it is until its month is ensured, then moves.
    await conn.execute("SELECT ensure_measurement_partition($1)", ahead.date())
    rows = await conn.fetch("SELECT tableoid::regclass::text AS part, methane_kg FROM measurements")
    assert [(r["part"], r["methane_kg"]) for r in rows] == [(f"measurements_{ahead:%Y_%m}", 1.5)]
