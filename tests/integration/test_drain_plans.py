"""Plans that outlive a month partition's statistics (docs/benchmarks.md, the lag collapse).

A month partition analyzed while empty (a database-wide ANALYZE, vacuumdb after a restore, a
month created ahead) is planned as a scan of nothing. A cached generic plan keeps that scan
while the partition fills: the drain's recompute read the whole partition once per (site,
hour) bucket, the API's ingest once per request (make bench --analyze-first). The worker plans
afresh (db.WORKER_POOL_SETTINGS) and ANALYZEs a partition that outgrew its statistics, which
makes every session replan (maintenance.analyze_outgrown_partitions).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import asyncpg
import pytest

from service import maintenance
from service.infra import db, queries
from service.infra.settings import Settings
from tests.harness.processes import WorkerProcess, wait_for

ARGS = "(ARRAY[{site}]::bigint[], ARRAY['2024-01-10 00:00+00']::timestamptz[], 2024, 1e9, '5 days')"


async def _fill_january_2024(conn: asyncpg.Connection, site: int) -> None:
    """40,001 one-minute readings into the 2024-01 partition (~300 pages)."""
    await conn.execute(
        "INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id) "
        "SELECT $1, '2024-01-01 00:00+00'::timestamptz + g * interval '1 minute', 1.0, "
        "'dev', gen_random_uuid() FROM generate_series(0, 40000) AS g",
        site,
    )


async def _plan_once_the_empty_partition_filled(
    pool: asyncpg.Pool,
    site: int,
    *,
    plan_cache_mode: str | None = None,
    analyze_after_filling: bool = False,
) -> str:
    """The recompute's plan in a session that ran it while 2024-01 was empty and analyzed."""
    q = queries.load("aggregates")["recompute_hours_find_leaks_and_late_months"]
    args = ARGS.format(site=site)
    async with pool.acquire() as proxy:
        # The pool hands out a proxy that behaves as a Connection in every way used here.
        conn = cast(asyncpg.Connection, proxy)
        if plan_cache_mode is not None:
            await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        await conn.execute("TRUNCATE measurements_2024_01")
        await conn.execute("ANALYZE measurements_2024_01")  # empty: reltuples 0
        await conn.execute(
            f"PREPARE recompute (bigint[], timestamptz[], int, float8, interval) AS {q}"
        )
        for _ in range(6):  # past the custom plans a generic one may replace
            await conn.execute(f"EXECUTE recompute {args}")
        await _fill_january_2024(conn, site)
        if analyze_after_filling:  # what the worker's refresh_statistics does
            assert await maintenance.analyze_outgrown_partitions(conn) == [
                "public.measurements_2024_01"
            ]
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE recompute {args}"))
        await conn.execute("DEALLOCATE recompute")
        await conn.execute("RESET plan_cache_mode")  # back to the session's own setting
    return plan


async def test_the_drain_replans_a_partition_that_filled_after_it_was_analyzed_empty(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    site = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('plans', 1e6) RETURNING id"
    )
    await conn.execute("SELECT ensure_measurement_partition('2024-01-01'::date)")
    api_pool = await db.create_pool(settings, min_size=1)
    worker_pool = await db.create_pool(
        settings, min_size=1, server_settings=db.WORKER_POOL_SETTINGS
    )
    try:
        # The trap: a generic plan (which the default plan cache may settle on after five
        # executions, as it did in the bench) keeps the scan of the once-empty partition.
        generic = await _plan_once_the_empty_partition_filled(
            api_pool, site, plan_cache_mode="force_generic_plan"
        )
        async with worker_pool.acquire() as session:
            mode = await session.fetchval("SHOW plan_cache_mode")
        fresh = await _plan_once_the_empty_partition_filled(worker_pool, site)
    finally:
        await api_pool.close()
        await worker_pool.close()
    assert "Seq Scan on measurements_2024_01" in generic, generic
    assert mode == "force_custom_plan"
    # The worker's sessions plan for the 40,001 rows there now: the primary key's index.
    assert "Seq Scan on measurements_2024_01" not in fresh, fresh
    assert "measurements_2024_01_pkey" in fresh, fresh


async def test_a_partition_that_outgrew_its_statistics_is_analyzed_and_plans_heal(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    """The worker's refresh (every 5 s) ANALYZEs such a partition: every session's cached
    plans are invalidated and replanned for its size, the API's generic ones included."""
    site = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('heal', 1e6) RETURNING id"
    )
    await conn.execute("SELECT ensure_measurement_partition('2024-01-01'::date)")
    pool = await db.create_pool(settings, min_size=1)
    try:
        trapped = await _plan_once_the_empty_partition_filled(
            pool, site, plan_cache_mode="force_generic_plan", analyze_after_filling=True
        )
    finally:
        await pool.close()
    assert "Seq Scan on measurements_2024_01" not in trapped, trapped
    assert "measurements_2024_01_pkey" in trapped, trapped
    # Analyzed once: now its statistics match its size, and nothing is left to do.
    reltuples = await conn.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = 'measurements_2024_01'::regclass"
    )
    assert reltuples == 40001
    assert await maintenance.analyze_outgrown_partitions(conn) == []


async def test_a_partition_analyzed_while_its_fill_was_uncommitted_is_analyzed_again(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """An ANALYZE during an uncommitted fill counts the fill's pages but none of its rows: the
    statistics say the partition is empty at its full size. Once the fill commits, the rows
    written since that ANALYZE send it back to be analyzed."""
    site = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('race', 1e6) RETURNING id"
    )
    await conn.execute("SELECT ensure_measurement_partition('2024-01-01'::date)")
    await conn.execute("ALTER TABLE measurements_2024_01 SET (autovacuum_enabled = off)")
    await conn.execute("ANALYZE measurements_2024_01")  # empty
    filler = await db.connect(db_url)
    try:
        async with filler.transaction():
            await _fill_january_2024(filler, site)
            # The worker's refresh meets the fill in flight: its pages, not its rows.
            assert await maintenance.analyze_outgrown_partitions(conn) == [
                "public.measurements_2024_01"
            ]
        await filler.execute("SELECT pg_stat_force_next_flush()")
        await filler.execute("SELECT 1")  # its row counts reach the shared statistics
    finally:
        await filler.close()
    query = "SELECT reltuples FROM pg_class WHERE oid = 'measurements_2024_01'::regclass"
    assert await conn.fetchval(query) == 0
    assert await maintenance.analyze_outgrown_partitions(conn) == ["public.measurements_2024_01"]
    assert await conn.fetchval(query) == 40001
    assert await maintenance.analyze_outgrown_partitions(conn) == []


@pytest.mark.slow
async def test_a_running_worker_analyzes_a_partition_that_outgrew_its_statistics(
    conn: asyncpg.Connection, settings: Settings, tmp_path: Path
) -> None:
    site = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('cron', 1e6) RETURNING id"
    )
    await conn.execute("SELECT ensure_measurement_partition('2024-01-01'::date)")
    # Only the worker may analyze it here: autovacuum is off for this partition.
    await conn.execute("ALTER TABLE measurements_2024_01 SET (autovacuum_enabled = off)")
    await conn.execute("ANALYZE measurements_2024_01")  # empty
    async with WorkerProcess(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        log_dir=tmp_path,
        name="stats",
    ):
        await _fill_january_2024(conn, site)
        query = "SELECT reltuples FROM pg_class WHERE oid = 'measurements_2024_01'::regclass"

        async def analyzed() -> bool:
            return bool(await conn.fetchval(query) == 40001)

        # refresh_statistics runs every 5 s.
        await wait_for(analyzed, timeout=15, interval=0.2, message="never analyzed")
