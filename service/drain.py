"""The drain use case: claim due outbox events, apply them per site, mark them, in one commit."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import msgspec
import structlog

from domain.events import (
    MEASUREMENTS_ACCEPTED,
    NOTICE_TYPES,
    MeasurementsAccepted,
    backoff_s,
    parse_accepted,
)
from service import aggregates
from service.infra import db, metrics, queries
from service.infra.db import CONNECTION_ERRORS
from service.infra.settings import Settings
from service.workers import WorkerState

log = structlog.get_logger("worker")


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
    deliveries: int = 0
    notices: int = 0  # alert and report events passed on to delivery
    emitted: int = 0  # events this drain wrote to the outbox (alerts, restatements)
    request_ids: list[str] = field(default_factory=list)

    def add(self, other: DrainReport) -> None:
        self.claimed += other.claimed
        self.applied += other.applied
        self.failed += other.failed
        self.dead += other.dead
        self.readings += other.readings
        self.sites += other.sites
        self.deliveries += other.deliveries
        self.emitted += other.emitted
        self.notices += other.notices
        self.request_ids.extend(other.request_ids)


class UnknownEventType(Exception):
    """The outbox holds an event type this worker does not know."""


@dataclass(frozen=True)
class _Applied:
    readings: int
    request_ids: list[str]


_Parsed = tuple[asyncpg.Record, MeasurementsAccepted]
_POISON = (msgspec.MsgspecError, ValueError, UnknownEventType)


def _parse(event: asyncpg.Record) -> MeasurementsAccepted:
    if event["event_type"] != MEASUREMENTS_ACCEPTED:
        raise UnknownEventType(f"unknown event type {event['event_type']!r}")
    return parse_accepted(event["payload"])


def _applied(items: list[_Parsed]) -> _Applied:
    return _Applied(sum(p.accepted for _, p in items), [p.request_id for _, p in items])


_Outcome = tuple[dict[int, _Applied], int]  # per site, and outbox events the change emitted


async def _apply_sites(
    conn: asyncpg.Connection, by_site: dict[int, list[_Parsed]], year: int
) -> _Outcome:
    """Apply every site's events with one recompute of the union of each site's hours."""
    hours = {site: [h for _, p in items for h in p.hours] for site, items in by_site.items()}
    emitted = await aggregates.recompute_hours(conn, hours=hours, year=year)
    return {site: _applied(items) for site, items in by_site.items()}, emitted


async def _try_apply(
    conn: asyncpg.Connection, by_site: dict[int, list[_Parsed]], year: int
) -> _Outcome | Exception:
    """Apply in a savepoint: a failure rolls back only this work."""
    try:
        async with conn.transaction():
            return await _apply_sites(conn, by_site, year)
    except CONNECTION_ERRORS:
        raise  # the whole claim is lost with the connection; it simply rolls back
    except (asyncpg.PostgresError, *_POISON) as exc:
        return exc


async def drain_batch(
    conn: asyncpg.Connection, *, limit: int, policy: RetryPolicy, rng: random.Random | None = None
) -> DrainReport:
    """Claim up to `limit` due events and apply them, all in one transaction.

    All sites' events are applied together, set-based. If that fails, each site is tried
    alone, and a failing site event by event, so one poison event backs off by itself; other
    sites are not held up. An event whose payload cannot be read fails by itself at once.
    """
    q = queries.load("drain")
    rng = rng or random.Random()
    report = DrainReport()
    year = aggregates.current_year()
    async with conn.transaction():
        events = await conn.fetch(q["claim_events"], limit)
        report.claimed = len(events)
        report.sites = len({event["site_id"] for event in events})
        failures: list[tuple[asyncpg.Record, Exception]] = []
        by_site: dict[int, list[_Parsed]] = defaultdict(list)
        notices: list[int] = []  # alert and report events: nothing to apply, only to deliver
        for event in events:
            if event["event_type"] in NOTICE_TYPES:
                notices.append(event["id"])
                continue
            try:
                by_site[event["site_id"]].append((event, _parse(event)))
            except _POISON as exc:
                failures.append((event, exc))
        applied: list[_Parsed] = []
        done = await _try_apply(conn, by_site, year) if by_site else ({}, 0)
        if isinstance(done, Exception):
            for site_id in sorted(by_site):  # one lock order for every drainer: no deadlocks
                group = by_site[site_id]
                tries = [group] if len(group) == 1 else [group, *([item] for item in group)]
                for items in tries:
                    result = await _try_apply(conn, {site_id: items}, year)
                    if not isinstance(result, Exception):
                        _record(report, result[0][site_id], items, applied)
                        report.emitted += result[1]
                        if items is group:
                            break  # the whole site went through: no single tries
                    elif len(items) == 1:
                        failures.append((items[0][0], result))
        else:
            report.emitted += done[1]
            for site_id, items in by_site.items():
                _record(report, done[0][site_id], items, applied)
        done_ids = [event["id"] for event, _ in applied] + notices
        if done_ids:
            # Marks them processed and queues a delivery per matching webhook subscription.
            report.deliveries = await conn.fetchval(q["mark_processed"], done_ids)
            report.notices += len(notices)
        for event, problem in failures:
            attempts = event["attempts"] + 1
            delay = backoff_s(
                attempts, base_s=policy.base_s, cap_s=policy.cap_s, jitter=rng.random()
            )
            error = f"{type(problem).__name__}: {problem}"[:2000]
            dead = await conn.fetchval(
                q["mark_failed"], event["id"], error, delay, policy.max_attempts
            )
            report.failed += 1
            report.dead += int(bool(dead))
    return report


def _record(
    report: DrainReport, result: _Applied, items: list[_Parsed], applied: list[_Parsed]
) -> None:
    applied.extend(items)
    report.applied += len(items)
    report.readings += result.readings
    report.request_ids.extend(result.request_ids)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.drain_max_attempts,
        base_s=settings.drain_backoff_base_s,
        cap_s=settings.drain_backoff_cap_s,
    )


async def drain_until_idle(
    pool: asyncpg.Pool, settings: Settings, state: WorkerState, *, trigger: str
) -> DrainReport:
    """Drain claim after claim until a claim comes back short or the time budget is spent.

    One call drains many events, so arq's per-job overhead never bounds throughput.
    """
    started = time.perf_counter()
    total = DrainReport()
    policy = retry_policy(settings)
    while True:
        async with db.connection(pool) as conn:
            report = await drain_batch(conn, limit=settings.drain_batch_size, policy=policy)
        total.add(report)
        if report.claimed < settings.drain_batch_size and not report.emitted:
            break  # idle; events this claim wrote (alerts, restatements) are drained next
        if time.perf_counter() - started > settings.drain_budget_s:
            break
    state.drained += total.applied
    if total.deliveries and state.wake_delivery is not None:
        state.wake_delivery()
    if total.claimed:
        metrics.DRAIN_BATCH.observe(total.applied)
        metrics.DRAIN_SECONDS.observe(time.perf_counter() - started)
        metrics.APPLIED.inc(total.applied)
        metrics.DEAD_LETTERED.inc(total.dead)
        log.info(
            "drained",
            trigger=trigger,
            events=total.applied,
            readings=total.readings,
            failed=total.failed,
            dead_lettered=total.dead,
            notices=total.notices,
            deliveries_queued=total.deliveries,
            sites=total.sites,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            request_ids=total.request_ids,
        )
    return total
