"""Alerts: raised in the transaction that changes the aggregates, each crossing exactly once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.alerts import crossed_thresholds, leak_kg_per_window, rate_kg_h
from service import queries
from service.errors import ServiceError
from service.sites import MAX_ID

Q = "alerts"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class AlertRules:
    leak_threshold_kg_h: float = 100.0
    stale_after: timedelta = timedelta(hours=6)


# Set once per process from settings (configure); the drain reads it deep in the call chain.
RULES = AlertRules()


def configure(rules: AlertRules) -> None:
    global RULES
    RULES = rules


def rules_from(leak_threshold_kg_h: float, stale_after_h: float) -> AlertRules:
    return AlertRules(leak_threshold_kg_h, timedelta(hours=stale_after_h))


class AlertNotFound(ServiceError):
    """No alert has this id."""


async def _raise(
    conn: asyncpg.Connection, site_id: int, kind: str, key: str, details: dict[str, Any]
) -> int | None:
    value = await conn.fetchval(queries.load(Q)["raise_alert"], site_id, kind, key, details)
    return int(value) if value is not None else None


async def check_site(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    hours: list[datetime],
    year: int,
    rules: AlertRules | None = None,
) -> list[int]:
    """Raise threshold and leak alerts for a site whose aggregates just changed (caller's
    transaction, after the totals update). The unique dedupe key makes a second raise of the
    same crossing a no-op, so replays, rebuilds and concurrent drains fire it once."""
    rules = rules or RULES
    q = queries.load(Q)
    site = await conn.fetchrow(q["site_for_alerts"], site_id)
    if site is None:
        return []
    raised = []
    if site["year"] == year:
        for threshold in crossed_thresholds(site["year_kg"], site["emission_limit_kg"]):
            details = {
                "year": year,
                "threshold_percent": threshold,
                "year_kg": site["year_kg"],
                "limit_kg": site["emission_limit_kg"],
            }
            raised.append(
                await _raise(conn, site_id, "threshold", f"threshold:{year}:{threshold:g}", details)
            )
    if hours:
        interval = site["reporting_interval_s"]
        per_window = leak_kg_per_window(rules.leak_threshold_kg_h, interval)
        rows = await conn.fetch(
            q["leak_windows"], site_id, hours, per_window, min(hours), max(hours) + HOUR
        )
        for row in rows:
            details = {
                "hour": row["hour"].isoformat(),
                "first_window": row["first_ts"].isoformat(),
                "peak_rate_kg_h": round(rate_kg_h(row["kg"], interval), 3),
                "threshold_kg_h": rules.leak_threshold_kg_h,
            }
            key = f"leak:{row['hour'].isoformat()}"
            raised.append(await _raise(conn, site_id, "leak", key, details))
    return [r for r in raised if r is not None]


async def raise_stale(conn: asyncpg.Connection, *, rules: AlertRules | None = None) -> list[int]:
    """One alert per staleness episode: keyed by the last reading time it went quiet at."""
    rules = rules or RULES
    raised = []
    for row in await conn.fetch(queries.load(Q)["stale_sites"], rules.stale_after):
        last = row["last_reading_at"].isoformat()
        details = {"last_reading_at": last, "stale_after_h": rules.stale_after / HOUR}
        raised.append(await _raise(conn, row["site_id"], "stale", f"stale:{last}", details))
    return [r for r in raised if r is not None]


async def list_alerts(
    conn: asyncpg.Connection, *, status: str, site_id: int | None, before: int, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(queries.load(Q)["list_alerts"], before, status, site_id, limit)


async def acknowledge(conn: asyncpg.Connection, *, alert_id: int, actor: str) -> asyncpg.Record:
    row = None
    if 0 < alert_id <= MAX_ID:
        row = await conn.fetchrow(queries.load(Q)["acknowledge"], alert_id, actor)
    if row is None:
        raise AlertNotFound(f"no alert with id {alert_id}")
    return row
