"""The drain use case: claim due outbox events, apply them per site, mark them, in one commit."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import msgspec

from domain.events import MEASUREMENTS_ACCEPTED, backoff_s, parse_accepted
from service import aggregates, queries
from service.db import CONNECTION_ERRORS


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_s: float = 1.0
    cap_s: float = 300.0


@dataclass
class DrainReport:
    claimed: int = 0
    applied: int = 0
    failed: int = 0
    dead: int = 0
    readings: int = 0
    sites: int = 0
    request_ids: list[str] = field(default_factory=list)

    def add(self, other: DrainReport) -> None:
        self.claimed += other.claimed
        self.applied += other.applied
        self.failed += other.failed
        self.dead += other.dead
        self.readings += other.readings
        self.sites += other.sites
        self.request_ids.extend(other.request_ids)


class UnknownEventType(Exception):
    """The outbox holds an event type this worker does not know."""


@dataclass(frozen=True)
class _Applied:
    readings: int
    request_ids: list[str]


async def _apply_site(
    conn: asyncpg.Connection, site_id: int, events: list[asyncpg.Record], year: int
) -> _Applied:
    """Apply every event of one site with one recompute of the union of their hours."""
    hours = set()
    readings = 0
    request_ids = []
    for event in events:
        if event["event_type"] != MEASUREMENTS_ACCEPTED:
            raise UnknownEventType(f"unknown event type {event['event_type']!r}")
        payload = parse_accepted(event["payload"])
        hours.update(payload.hours)
        readings += payload.accepted
        request_ids.append(payload.request_id)
    await aggregates.recompute_hours(conn, site_id=site_id, hours=hours, year=year)
    return _Applied(readings, request_ids)


async def _try_apply(
    conn: asyncpg.Connection, site_id: int, events: list[asyncpg.Record], year: int
) -> _Applied | Exception:
    """Apply in a savepoint: a failure rolls back only this site's work."""
    try:
        async with conn.transaction():
            return await _apply_site(conn, site_id, events, year)
    except CONNECTION_ERRORS:
        raise  # the whole claim is lost with the connection; it simply rolls back
    except (asyncpg.PostgresError, msgspec.MsgspecError, ValueError, UnknownEventType) as exc:
        return exc


async def drain_batch(
    conn: asyncpg.Connection, *, limit: int, policy: RetryPolicy, rng: random.Random | None = None
) -> DrainReport:
    """Claim up to `limit` due events and apply them, all in one transaction.

    Events of one site share one recompute. If that fails, each of the site's events is
    tried alone, so one poison event backs off by itself; other sites are not held up.
    """
    q = queries.load("drain")
    rng = rng or random.Random()
    report = DrainReport()
    year = aggregates.current_year()
    async with conn.transaction():
        events = await conn.fetch(q["claim_events"], limit)
        report.claimed = len(events)
        by_site: dict[int, list[asyncpg.Record]] = defaultdict(list)
        for event in events:
            by_site[event["site_id"]].append(event)
        applied_ids: list[int] = []
        failures: list[tuple[asyncpg.Record, Exception]] = []
        for site_id in sorted(by_site):  # one lock order for every drainer: no deadlocks
            group = by_site[site_id]
            result = await _try_apply(conn, site_id, group, year)
            if isinstance(result, Exception) and len(group) > 1:
                for event in group:
                    single = await _try_apply(conn, site_id, [event], year)
                    _record(report, single, [event], applied_ids, failures)
            else:
                _record(report, result, group, applied_ids, failures)
        report.sites = len(by_site)
        if applied_ids:
            await conn.execute(q["mark_processed"], applied_ids)
        for event, exc in failures:
            attempts = event["attempts"] + 1
            delay = backoff_s(
                attempts, base_s=policy.base_s, cap_s=policy.cap_s, jitter=rng.random()
            )
            error = f"{type(exc).__name__}: {exc}"[:2000]
            dead = await conn.fetchval(
                q["mark_failed"], event["id"], error, delay, policy.max_attempts
            )
            report.failed += 1
            report.dead += int(bool(dead))
    return report


def _record(
    report: DrainReport,
    result: _Applied | Exception,
    events: list[asyncpg.Record],
    applied_ids: list[int],
    failures: list[tuple[asyncpg.Record, Exception]],
) -> None:
    if isinstance(result, Exception):
        failures.extend((event, result) for event in events)
        return
    applied_ids.extend(event["id"] for event in events)
    report.applied += len(events)
    report.readings += result.readings
    report.request_ids.extend(result.request_ids)
