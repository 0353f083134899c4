"""Site aggregates: recompute hour buckets from raw readings and keep totals equal to their sum."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

from domain.buckets import hours_of
from domain.roles import Actor
from service import alerts, audit
from service.infra import queries


def current_year() -> int:
    return datetime.now(UTC).year


async def recompute_hours(
    conn: asyncpg.Connection,
    *,
    hours: Mapping[int, Iterable[datetime]],
    year: int,
    rules: alerts.AlertRules,
) -> int:
    """Recompute each site's buckets for its `hours` and move its totals by the change.

    Three statements, whatever the number of sites. The sites' totals rows are locked first
    (in site order, as every drainer does), so the recompute (a later statement, with a later
    snapshot) sees every reading the previous holder of a lock saw. Recomputing from raw data
    makes this idempotent: applying the same hours twice changes nothing the second time.
    Returns the number of events the change wrote to the outbox (alerts, restatements).
    """
    q = queries.load("aggregates")
    wanted = {site: hours_of(hs) for site, hs in hours.items()}
    sites = sorted(site for site, hs in wanted.items() if hs)
    if not sites:
        return 0
    await conn.execute(q["lock_many_site_totals"], sites, year)
    changes = await conn.fetch(
        q["recompute_hours_find_leaks_and_late_months"],
        [site for site in sites for _ in wanted[site]],
        [hour for site in sites for hour in wanted[site]],
        year,
        rules.leak_threshold_kg_h,
        rules.report_grace,
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
        raised = await alerts.raise_for_changes(
            conn, totals=totals, changes=changes, year=year, rules=rules
        )
        late = [c for c in changes if c["late_months"]]
        return len(raised) + (await _apply_late(conn, late, year) if late else 0)
    return 0


async def _apply_late(conn: asyncpg.Connection, changes: list[asyncpg.Record], year: int) -> int:
    """Late data: restate closed months (a row and a report.restated event each), and check
    the thresholds of past years it changed (the totals row only follows the current year)."""
    q = queries.load("aggregates")
    restated: list[tuple[int, date, Decimal, int]] = []
    raised: list[int | None] = []
    for c in changes:
        months = zip(
            c["late_months"], c["late_kg"], c["late_readings"], c["late_closed"], strict=True
        )
        past_years: dict[int, float] = defaultdict(float)
        for month, delta_kg, delta_readings, closed in months:
            if closed:
                restated.append((c["site_id"], month, delta_kg, delta_readings))
            if month.year != year:
                past_years[month.year] += float(delta_kg)
        if past_years:
            for row in await conn.fetch(q["year_totals"], c["site_id"], sorted(past_years)):
                raised += await alerts.raise_crossings(
                    conn,
                    site_id=c["site_id"],
                    year=row["year"],
                    before_kg=row["year_kg"] - past_years[row["year"]],
                    year_kg=row["year_kg"],
                    limit_kg=row["limit_kg"],
                )
    if restated:
        await conn.execute(q["record_restatements"], *map(list, zip(*restated, strict=True)))
    return len(restated) + sum(1 for r in raised if r is not None)


async def rebuild_site(conn: asyncpg.Connection, *, site_id: int, year: int) -> int:
    """Recompute every bucket and the totals of a site from raw data. Returns the bucket count."""
    q = queries.load("aggregates")
    await conn.fetchval(q["lock_site_totals"], site_id, year)
    await conn.execute(q["delete_site_hourly"], site_id)
    inserted = await conn.execute(q["insert_all_hours"], site_id)
    await conn.execute(q["reset_totals"], site_id, year)
    await alerts.check_thresholds(conn, site_id=site_id, year=year)
    return int(inserted.rsplit(" ", 1)[-1])


async def rebuild(
    conn: asyncpg.Connection, *, site_id: int | None, actor: Actor
) -> tuple[int, int, audit.AuditEntry]:
    """Recompute every bucket of one site (or of all sites) from raw data. Returns (sites,
    buckets) and the audit entry.

    One transaction per site: a long rebuild of many sites never holds every site's lock.
    """
    if site_id is None:
        site_ids = [r["id"] for r in await conn.fetch(queries.load("aggregates")["site_ids"])]
    else:
        site_ids = [site_id]
    buckets = 0
    for sid in site_ids:
        async with conn.transaction():
            buckets += await rebuild_site(conn, site_id=sid, year=current_year())
    entry = await audit.record(
        conn,
        actor=actor,
        action="aggregates.rebuild",
        params={"site_id": site_id},
        affected=len(site_ids),
        dry_run=False,
    )
    return len(site_ids), buckets, entry
