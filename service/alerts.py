"""Alerts: raised in the transaction that changes the aggregates, each crossing exactly once;
listed, grouped by site and kind, and acknowledged (one, or many at once), audited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from domain.alerts import crossed_thresholds
from domain.errors import FieldError
from domain.events import ALERT_EVENT_TYPE
from domain.roles import Actor
from service import audit
from service.infra import queries
from service.infra.db import valid_id
from service.infra.errors import InvalidInput, ServiceError
from service.infra.settings import Settings

Q = "alerts"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class AlertRules:
    leak_threshold_kg_h: float = 100.0
    stale_after: timedelta = timedelta(hours=6)
    # A month is closed this long after it ends; later changes to it are restatements.
    report_grace: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertRules:
        return cls(
            leak_threshold_kg_h=settings.leak_threshold_kg_h,
            stale_after=timedelta(hours=settings.stale_after_h),
            report_grace=timedelta(hours=settings.report_grace_h),
        )


class AlertNotFound(ServiceError):
    """No alert has this id."""


async def _raise(
    conn: asyncpg.Connection, site_id: int, kind: str, key: str, details: dict[str, Any]
) -> int | None:
    query = queries.load(Q)["raise_alert"]
    value = await conn.fetchval(query, site_id, kind, key, details, ALERT_EVENT_TYPE[kind])
    return int(value) if value is not None else None


async def check_thresholds(conn: asyncpg.Connection, *, site_id: int, year: int) -> list[int]:
    """Threshold alerts for one site from its current totals (after a rebuild)."""
    site = await conn.fetchrow(queries.load(Q)["site_for_alerts"], site_id)
    if site is None or site["year"] != year:
        return []
    raised = await raise_crossings(
        conn,
        site_id=site_id,
        year=year,
        before_kg=None,
        year_kg=site["year_kg"],
        limit_kg=site["emission_limit_kg"],
    )
    return [r for r in raised if r is not None]


async def raise_for_changes(
    conn: asyncpg.Connection,
    *,
    totals: Sequence[asyncpg.Record | Mapping[str, Any]],
    changes: Sequence[asyncpg.Record | Mapping[str, Any]],
    year: int,
    rules: AlertRules,
) -> list[int]:
    """Threshold alerts from the updated totals (site_id, year_kg, limit_kg) and leak alerts
    from the recompute's leak hours (site_id, leak_hours, leak_rates): set-based inputs, so
    the drain pays a query only for an alert that actually fires."""
    raised: list[int | None] = []
    # Only a crossing in this change needs an insert (the dedupe key would reject a repeat
    # anyway); this keeps sites long above a threshold from costing a query per claim.
    year_delta = {row["site_id"]: float(row["year_delta_kg"]) for row in changes}
    for row in totals:
        site_id = row["site_id"]
        before = row["year_kg"] - year_delta[site_id] if site_id in year_delta else 0
        raised += await raise_crossings(
            conn,
            site_id=site_id,
            year=year,
            before_kg=before if changes else None,
            year_kg=row["year_kg"],
            limit_kg=row["limit_kg"],
        )
    for row in changes:
        for hour, rate in zip(row["leak_hours"], row["leak_rates"], strict=True):
            details = {
                "hour": hour.isoformat(),
                "peak_rate_kg_h": round(rate, 3),
                "threshold_kg_h": rules.leak_threshold_kg_h,
            }
            key = f"leak:{hour.isoformat()}"
            raised.append(await _raise(conn, row["site_id"], "leak", key, details))
    return [r for r in raised if r is not None]


async def raise_crossings(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    year: int,
    before_kg: float | None,
    year_kg: float,
    limit_kg: float,
) -> list[int | None]:
    """Threshold alerts for the thresholds a site's year passed going from before_kg to
    year_kg (None: every threshold it is past, as after a rebuild)."""
    already = set(crossed_thresholds(before_kg, limit_kg)) if before_kg is not None else set()
    raised = []
    for threshold in crossed_thresholds(year_kg, limit_kg):
        if threshold in already:
            continue
        details = {
            "year": year,
            "threshold_percent": threshold,
            "year_kg": year_kg,
            "limit_kg": limit_kg,
        }
        key = f"threshold:{year}:{threshold:g}"
        raised.append(await _raise(conn, site_id, "threshold", key, details))
    return raised


async def raise_stale(conn: asyncpg.Connection, *, rules: AlertRules) -> list[int]:
    """One alert per staleness episode: keyed by the last reading time it went quiet at."""
    raised = []
    for row in await conn.fetch(queries.load(Q)["stale_sites"], rules.stale_after):
        last = row["last_reading_at"].isoformat()
        details = {"last_reading_at": last, "stale_after_h": rules.stale_after / HOUR}
        raised.append(await _raise(conn, row["site_id"], "stale", f"stale:{last}", details))
    return [r for r in raised if r is not None]


async def list_alerts(
    conn: asyncpg.Connection,
    *,
    status: str,
    site_id: int | None,
    before: int,
    limit: int,
    kind: str | None = None,
) -> list[asyncpg.Record]:
    return await conn.fetch(queries.load(Q)["list_alerts"], before, status, site_id, limit, kind)


async def count_alerts(
    conn: asyncpg.Connection, *, site_id: int | None, kind: str | None = None
) -> tuple[int, int]:
    """(open, acknowledged) alerts, of one site or all, of one kind or all."""
    row = await conn.fetchrow(queries.load(Q)["count_alerts"], site_id, kind)
    assert row is not None
    return row["open"], row["acknowledged"]


async def acknowledge(conn: asyncpg.Connection, *, alert_id: int, actor: Actor) -> asyncpg.Record:
    """Acknowledge an open alert (again: a no-op that keeps the first), audited."""
    row = None
    async with conn.transaction():
        if valid_id(alert_id):
            row = await conn.fetchrow(queries.load(Q)["acknowledge"], alert_id, actor.name)
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id}")
        await audit.record(conn, actor=actor, action="alert.ack", params={"alert_id": alert_id})
    return row


async def groups(
    conn: asyncpg.Connection, *, status: str, site_id: int | None, kind: str | None, limit: int
) -> list[asyncpg.Record]:
    """Alerts by (site, kind): count, open count, first and last raised; newest group first."""
    return await conn.fetch(queries.load(Q)["alert_groups"], status, site_id, kind, limit)


class InvalidAcknowledge(InvalidInput):
    """Give exactly one of: alert ids; a site (optionally with a kind); a kind."""


async def acknowledge_many(
    conn: asyncpg.Connection,
    *,
    alert_ids: list[int] | None,
    site_id: int | None,
    kind: str | None,
    actor: Actor,
) -> tuple[list[int], audit.AuditEntry]:
    """Acknowledge the open alerts selected by ids, or by site and/or kind (a group is both),
    audited; returns the ids acknowledged by this call (those acknowledged before keep their
    first acknowledgement and are not counted, so a repeat acknowledges none)."""
    if (alert_ids is not None) == (site_id is not None or kind is not None):
        message = "give exactly one of: alert_ids, or site_id and/or kind"
        raise InvalidAcknowledge([FieldError("", message)])
    if alert_ids is not None:
        alert_ids = [i for i in alert_ids if valid_id(i)]
    async with conn.transaction():
        rows = await conn.fetch(
            queries.load(Q)["acknowledge_many"], alert_ids, site_id, actor.name, kind
        )
        done = sorted(r["id"] for r in rows)
        entry = await audit.record(
            conn,
            actor=actor,
            action="alerts.ack",
            params={"alert_ids": alert_ids, "site_id": site_id, "kind": kind},
            affected=len(done),
        )
    return done, entry
