"""Waiting for the outbox to drain, and exact expected vs actual totals. The worker process and
the polling helper live in tests/harness/processes.py; they are importable from here too."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import MAX_PREC, Decimal, localcontext

import asyncpg

from domain.buckets import hour_of
from tests.harness.processes import WorkerProcess as WorkerProcess
from tests.harness.processes import wait_for as wait_for

Reading = tuple[int, datetime, float]  # (site_id, ts, methane_kg) as sent


async def pending_events(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE processed_at IS NULL AND dead_at IS NULL"
    )
    return count


async def wait_drained(conn: asyncpg.Connection, timeout: float = 10.0) -> None:
    """Wait until no outbox event is pending (unprocessed and not dead)."""

    async def drained() -> bool:
        return await pending_events(conn) == 0

    await wait_for(drained, timeout=timeout, interval=0.1, message="the outbox never drained")


@dataclass
class Totals:
    """Per-site aggregates, all exact: kg as Decimal, keyed by site (and UTC hour)."""

    lifetime_kg: dict[int, Decimal] = field(default_factory=dict)
    year_kg: dict[int, Decimal | None] = field(default_factory=dict)  # None: another year
    readings: dict[int, int] = field(default_factory=dict)
    last_reading_at: dict[int, datetime] = field(default_factory=dict)
    hourly: dict[tuple[int, datetime], tuple[Decimal, int]] = field(default_factory=dict)


def first_values(sent: Iterable[Reading]) -> dict[tuple[int, datetime], float]:
    """What the database keeps: the first value sent for each (site, ts); later ones conflict."""
    kept: dict[tuple[int, datetime], float] = {}
    for site_id, ts, kg in sent:
        kept.setdefault((site_id, ts), kg)
    return kept


def expected_totals(sent: Iterable[Reading], *, year: int) -> Totals:
    """The aggregates the readings sent (in acknowledged order) must produce.

    A reading counts as the shortest decimal of its float: Decimal(str(kg)), as the drain,
    added exactly (numeric does not round; Python's default context keeps 28 digits).
    """
    with localcontext(prec=MAX_PREC):
        return _expected_totals(first_values(sent), year=year)


def _expected_totals(kept: dict[tuple[int, datetime], float], *, year: int) -> Totals:
    lifetime: dict[int, Decimal] = defaultdict(Decimal)
    this_year: dict[int, Decimal] = defaultdict(Decimal)
    count: dict[int, int] = defaultdict(int)
    last: dict[int, datetime] = {}
    hour_kg: dict[tuple[int, datetime], Decimal] = defaultdict(Decimal)
    hour_n: dict[tuple[int, datetime], int] = defaultdict(int)
    for (site_id, ts), kg in kept.items():
        value = Decimal(str(kg))
        lifetime[site_id] += value
        if hour_of(ts).year == year:
            this_year[site_id] += value
        count[site_id] += 1
        last[site_id] = max(last.get(site_id, ts), ts)
        hour_kg[site_id, hour_of(ts)] += value
        hour_n[site_id, hour_of(ts)] += 1
    return Totals(
        lifetime_kg=dict(lifetime),
        year_kg={site_id: this_year[site_id] for site_id in lifetime},
        readings=dict(count),
        last_reading_at=last,
        hourly={key: (kg, hour_n[key]) for key, kg in hour_kg.items()},
    )


async def actual_totals(conn: asyncpg.Connection, *, year: int) -> Totals:
    """`site_totals` and `site_hourly` as stored (numeric as Decimal, no float conversion).

    A totals row of another year than `year` shows its year_kg as None (a mismatch).
    """
    totals = Totals()
    for row in await conn.fetch(
        "SELECT site_id, lifetime_kg, year, year_kg, readings, last_reading_at FROM site_totals"
    ):
        site_id = row["site_id"]
        totals.lifetime_kg[site_id] = row["lifetime_kg"]
        totals.year_kg[site_id] = row["year_kg"] if row["year"] == year else None
        totals.readings[site_id] = row["readings"]
        totals.last_reading_at[site_id] = row["last_reading_at"]
    for row in await conn.fetch("SELECT site_id, hour, total_kg, readings FROM site_hourly"):
        totals.hourly[row["site_id"], row["hour"]] = (row["total_kg"], row["readings"])
    return totals
