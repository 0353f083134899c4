"""Stored history for the growth rows: readings by COPY, aggregates by one INSERT ... SELECT each.

History windows are older than anything the bench writes over HTTP (before start - RECENT),
one per minute per site, so they share the sites and the indexes with the new readings.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg

from service.infra import db
from tests.bench.batches import STEP, device_of

_CHUNK_ROWS = 50_000


async def build_history(url: str, site_ids: list[int], readings: int, *, end: datetime) -> None:
    """`readings` readings spread evenly over the sites, on two connections (two cores)."""
    if readings <= 0:
        return
    per_site = readings // len(site_ids)
    end = end.astimezone(UTC).replace(second=0, microsecond=0)
    stamps = [(end - STEP * (i + 1)).isoformat() for i in range(per_site)]
    rng = random.Random(11)
    kgs = [f"{rng.uniform(0.0, 50.0):.3f}" for _ in range(9973)]  # a prime: no short cycle
    halves = [site_ids[0::2], site_ids[1::2]]
    await asyncio.gather(*(_copy(url, half, stamps, kgs) for half in halves if half))
    conn = await db.connect(url)
    try:
        await conn.execute(
            "INSERT INTO site_hourly (site_id, hour, total_kg, readings) "
            "SELECT site_id, date_trunc('hour', ts, 'UTC'), sum(methane_kg::text::numeric), "
            "count(*) "
            "FROM measurements GROUP BY 1, 2"
        )
        year = datetime.now(UTC).year
        await conn.execute(
            "INSERT INTO site_totals (site_id, year, lifetime_kg, year_kg, readings, "
            "last_reading_at) "
            "SELECT site_id, $1, sum(total_kg), "
            "coalesce(sum(total_kg) FILTER (WHERE extract(year FROM hour)::int = $1::int), 0), "
            "sum(readings), $2 FROM site_hourly GROUP BY site_id",
            year,
            end - STEP,  # every site's newest history window
        )
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")  # not in the middle of the measurement
    finally:
        await conn.close()


async def _copy(url: str, site_ids: list[int], stamps: list[str], kgs: list[str]) -> None:
    conn = await asyncpg.connect(url, server_settings={"timezone": "UTC"})
    try:
        await conn.copy_to_table(
            "measurements",
            source=_rows(site_ids, stamps, kgs),
            columns=["site_id", "ts", "methane_kg", "device_id", "batch_id"],
        )
    finally:
        await conn.close()


async def _rows(site_ids: list[int], stamps: list[str], kgs: list[str]) -> AsyncIterator[bytes]:
    """COPY text, site by site (each site's windows are adjacent in the primary key)."""
    chunk: list[str] = []
    n = len(kgs)
    for site_id in site_ids:
        head = f"{site_id}\t"
        tail = f"\t{device_of(site_id)}\t{uuid.uuid4()}\n"
        offset = site_id * 31
        chunk.extend(head + ts + "\t" + kgs[(offset + i) % n] + tail for i, ts in enumerate(stamps))
        if len(chunk) >= _CHUNK_ROWS:
            yield "".join(chunk).encode()
            chunk = []
    if chunk:
        yield "".join(chunk).encode()
