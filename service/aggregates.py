"""Site aggregates: recompute hour buckets from raw readings and keep totals equal to their sum."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import asyncpg

from domain.buckets import hour_of
from service import alerts, queries


def current_year() -> int:
    return datetime.now(UTC).year


async def recompute_hours(
    conn: asyncpg.Connection, *, hours: Mapping[int, Iterable[datetime]], year: int
) -> int:
    """Recompute each site's buckets for its `hours` and move its totals by the change.

    Three statements, whatever the number of sites. The sites' totals rows are locked first
    (in site order, as every drainer does), so the recompute (a later statement, with a later
    snapshot) sees every reading the previous holder of a lock saw. Recomputing from raw data
    makes this idempotent: applying the same hours twice changes nothing the second time.
    Returns the number of buckets recomputed.
    """
    q = queries.load("drain")
    wanted = {site: sorted({hour_of(h) for h in hs}) for site, hs in hours.items()}
    sites = sorted(site for site, hs in wanted.items() if hs)
    if not sites:
        return 0
    await conn.execute(q["lock_many_site_totals"], sites, year)
    rules = alerts.RULES
    changes = await conn.fetch(
        q["recompute_hours"],
        [site for site in sites for _ in wanted[site]],
        [hour for site in sites for hour in wanted[site]],
        year,
        rules.leak_threshold_kg_h,
    )
    if changes:
        totals = await conn.fetch(
            q["add_to_totals"],
            [c["site_id"] for c in changes],
            [c["delta_kg"] for c in changes],
            [c["delta_readings"] for c in changes],
            [c["year_delta_kg"] for c in changes],
            [c["last_ts"] for c in changes],
            year,
        )
        # Same transaction as the totals: each crossing fires once (unique dedupe keys).
        # Both inputs come from the statements above, so no extra query unless one fired.
        await alerts.raise_for_changes(conn, totals=totals, changes=changes, year=year)
    return sum(c["buckets"] for c in changes)


async def rebuild_site(conn: asyncpg.Connection, *, site_id: int, year: int) -> int:
    """Recompute every bucket and the totals of a site from raw data. Returns the bucket count."""
    q = queries.load("drain")
    await conn.fetchval(q["lock_site_totals"], site_id, year)
    await conn.execute(q["delete_site_hourly"], site_id)
    inserted = await conn.execute(q["insert_all_hours"], site_id)
    await conn.execute(q["reset_totals"], site_id, year)
    await alerts.check_thresholds(conn, site_id=site_id, year=year)
    return int(inserted.rsplit(" ", 1)[-1])
