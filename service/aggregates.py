"""Site aggregates: recompute hour buckets from raw readings and keep totals equal to their sum."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from domain.buckets import hour_of
from service import queries

HOUR = timedelta(hours=1)


def current_year() -> int:
    return datetime.now(UTC).year


async def recompute_hours(
    conn: asyncpg.Connection, *, site_id: int, hours: Iterable[datetime], year: int
) -> int:
    """Recompute the site's buckets for `hours` and move its totals by the change.

    Locks the site's totals row first, so the recompute (a later statement, with a later
    snapshot) sees every reading the previous holder of the lock saw. Recomputing from raw
    data makes this idempotent: applying the same hours twice changes nothing the second time.
    Returns the number of buckets recomputed.
    """
    q = queries.load("drain")
    wanted = sorted({hour_of(h) for h in hours})
    if not wanted:
        return 0
    await conn.fetchval(q["lock_site_totals"], site_id, year)
    changes = await conn.fetch(q["recompute_hours"], site_id, wanted, wanted[0], wanted[-1] + HOUR)
    lifetime = sum((c["delta_kg"] for c in changes), Decimal(0))
    this_year = sum((c["delta_kg"] for c in changes if c["hour"].year == year), Decimal(0))
    readings = sum(c["delta_readings"] for c in changes)
    last = max((c["last_ts"] for c in changes), default=None)
    await conn.execute(q["add_to_totals"], site_id, lifetime, readings, year, this_year, last)
    return len(changes)


async def rebuild_site(conn: asyncpg.Connection, *, site_id: int, year: int) -> int:
    """Recompute every bucket and the totals of a site from raw data. Returns the bucket count."""
    q = queries.load("drain")
    await conn.fetchval(q["lock_site_totals"], site_id, year)
    await conn.execute(q["delete_site_hourly"], site_id)
    inserted = await conn.execute(q["insert_all_hours"], site_id)
    await conn.execute(q["reset_totals"], site_id, year)
    return int(inserted.rsplit(" ", 1)[-1])
