"""The drain use case: claim due outbox events, apply them per site, mark them, in one commit."""

from __future__ import annotations

import os
import random
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg
import msgspec
import structlog

from domain.events import (
    BATCH_ACCEPTED,
    MEASUREMENTS_ACCEPTED,
    NOTICE_TYPES,
    MeasurementsAccepted,
    backoff_s,
    parse_accepted,
)
from service import aggregates
from service.alerts import AlertRules
from service.infra import db, metrics, queries
from service.infra.db import CONNECTION_ERRORS
from service.infra.settings import Settings
from service.workers import WorkerState

log = structlog.get_logger("worker")


DEFAULT_RULES = AlertRules()


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


_POISON = (msgspec.MsgspecError, ValueError, UnknownEventType)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A claimed batch event and its payload."""

    event: asyncpg.Record
    payload: MeasurementsAccepted


@dataclass
class Claim:
    """A claim sorted by what each event needs: batches to apply (by site), notices only to
    deliver, and events whose payload cannot be read."""

    by_site: dict[int, list[Parsed]] = field(default_factory=lambda: defaultdict(list))
    notices: list[int] = field(default_factory=list)
    failures: list[tuple[asyncpg.Record, Exception]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Applied:
    """A group of events went through; its change wrote `emitted` outbox events."""

    emitted: int


@dataclass(frozen=True, slots=True)
class Failed:
    """A group of events failed and was rolled back to its savepoint."""

    error: Exception


def _parse(event: asyncpg.Record) -> MeasurementsAccepted:
    if event["event_type"] != MEASUREMENTS_ACCEPTED:
        raise UnknownEventType(f"unknown event type {event['event_type']!r}")
    return parse_accepted(event["payload"])


def _sort(events: list[asyncpg.Record]) -> Claim:
    claim = Claim()
    for event in events:
        if event["event_type"] in NOTICE_TYPES:
            claim.notices.append(event["id"])
            continue
        try:
            claim.by_site[event["site_id"]].append(Parsed(event, _parse(event)))
        except _POISON as exc:
            claim.failures.append((event, exc))
    return claim


async def _try_apply(
    conn: asyncpg.Connection,
    by_site: dict[int, list[Parsed]],
    *,
    year: int,
    rules: AlertRules,
) -> Applied | Failed:
    """Apply every site's events with one recompute of the union of each site's hours, in a
    savepoint: a failure rolls back only this work."""
    hours = {site: [h for p in items for h in p.payload.hours] for site, items in by_site.items()}
    try:
        async with conn.transaction():
            return Applied(
                await aggregates.recompute_hours(conn, hours=hours, year=year, rules=rules)
            )
    except CONNECTION_ERRORS:
        raise  # the whole claim is lost with the connection; it simply rolls back
    except (asyncpg.PostgresError, *_POISON) as exc:
        return Failed(exc)


async def drain_batch(
    conn: asyncpg.Connection,
    *,
    limit: int,
    policy: RetryPolicy,
    rules: AlertRules = DEFAULT_RULES,
    rng: random.Random | None = None,
    stream: bool = False,
    worker: str | None = None,
) -> DrainReport:
    """Claim up to `limit` due events and apply them, all in one transaction.

    All sites' events are applied together, set-based. If that fails, each site is tried
    alone, and a failing site event by event, so one poison event backs off by itself; other
    sites are not held up. An event whose payload cannot be read fails by itself at once.
    With `stream`, every event marked processed is also queued for the JetStream relay.
    Each failure's error is kept in outbox_errors under `worker` (default: host:pid).
    """
    q = queries.load("drain")
    report = DrainReport()
    year = aggregates.current_year()
    async with conn.transaction():
        events = await conn.fetch(q["claim_due_events"], limit)
        report.claimed = len(events)
        report.sites = len({event["site_id"] for event in events})
        claim = _sort(events)
        applied = await _apply(conn, claim, report, year=year, rules=rules)
        done_ids = [p.event["id"] for p in applied] + claim.notices
        if done_ids:
            report.deliveries = await conn.fetchval(
                q["mark_processed_and_queue_deliveries"],
                done_ids,
                MEASUREMENTS_ACCEPTED,
                BATCH_ACCEPTED,
                stream,
            )
            report.notices += len(claim.notices)
        await _back_off(
            conn,
            claim.failures,
            report,
            policy,
            rng or random.Random(),
            worker or f"{socket.gethostname()}:{os.getpid()}",
        )
    return report


async def _apply(
    conn: asyncpg.Connection, claim: Claim, report: DrainReport, *, year: int, rules: AlertRules
) -> list[Parsed]:
    """The claim's batches applied: all at once, else site by site, else event by event (a
    failing single event joins claim.failures). Returns the events that went through."""
    if not claim.by_site:
        return []
    applied: list[Parsed] = []
    result = await _try_apply(conn, claim.by_site, year=year, rules=rules)
    if isinstance(result, Applied):
        report.emitted += result.emitted
        for items in claim.by_site.values():
            _count(report, items, applied)
        return applied
    for site_id in sorted(claim.by_site):  # one lock order for every drainer: no deadlocks
        group = claim.by_site[site_id]
        tries = [group] if len(group) == 1 else [group, *([item] for item in group)]
        for items in tries:
            result = await _try_apply(conn, {site_id: items}, year=year, rules=rules)
            if isinstance(result, Applied):
                report.emitted += result.emitted
                _count(report, items, applied)
                if items is group:
                    break  # the whole site went through: no single tries
            elif len(items) == 1:
                claim.failures.append((items[0].event, result.error))
    return applied


async def _back_off(
    conn: asyncpg.Connection,
    failures: list[tuple[asyncpg.Record, Exception]],
    report: DrainReport,
    policy: RetryPolicy,
    rng: random.Random,
    worker: str,
) -> None:
    """Each failed event waits (exponential, jittered) or, out of attempts, is dead-lettered;
    its error joins the event's history either way."""
    q = queries.load("drain")
    query = q["back_off_or_dead_letter"]
    for event, problem in failures:
        attempts = event["attempts"] + 1
        delay = backoff_s(attempts, base_s=policy.base_s, cap_s=policy.cap_s, jitter=rng.random())
        error = f"{type(problem).__name__}: {problem}"[:2000]
        dead = await conn.fetchval(query, event["id"], error, delay, policy.max_attempts)
        await conn.execute(q["record_error"], event["id"], attempts, worker, error)
        report.failed += 1
        report.dead += int(bool(dead))


def _count(report: DrainReport, items: list[Parsed], applied: list[Parsed]) -> None:
    applied.extend(items)
    report.applied += len(items)
    report.readings += sum(p.payload.accepted for p in items)
    report.request_ids.extend(p.payload.request_id for p in items)


@dataclass(frozen=True)
class DrainConfig:
    """How a worker drains, read from settings once at startup."""

    batch_size: int = 1000
    budget_s: float = 5.0
    policy: RetryPolicy = RetryPolicy()
    rules: AlertRules = DEFAULT_RULES
    stream: bool = False  # queue applied events for the JetStream relay (NATS_URL set)

    @classmethod
    def from_settings(cls, settings: Settings) -> DrainConfig:
        return cls(
            batch_size=settings.drain_batch_size,
            budget_s=settings.drain_budget_s,
            policy=RetryPolicy(
                max_attempts=settings.drain_max_attempts,
                base_s=settings.drain_backoff_base_s,
                cap_s=settings.drain_backoff_cap_s,
            ),
            rules=AlertRules.from_settings(settings),
            stream=settings.nats_url is not None,
        )


async def drain_until_idle(
    pool: asyncpg.Pool, config: DrainConfig, state: WorkerState, *, trigger: str
) -> DrainReport:
    """Drain claim after claim until a claim comes back short or the time budget is spent.

    One call drains many events, so arq's per-job overhead never bounds throughput.
    """
    started = time.perf_counter()
    total = DrainReport()
    while True:
        async with db.connection(pool) as conn:
            report = await drain_batch(
                conn,
                limit=config.batch_size,
                policy=config.policy,
                rules=config.rules,
                stream=config.stream,
                worker=state.worker_id,
            )
        total.add(report)
        if report.claimed < config.batch_size and not report.emitted:
            break  # idle; events this claim wrote (alerts, restatements) are drained next
        if time.perf_counter() - started > config.budget_s:
            break
    state.drained += total.applied
    if total.deliveries and state.wake_delivery is not None:
        state.wake_delivery()
    if total.applied + total.notices and state.wake_stream is not None:
        state.wake_stream()
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
            # The API's key for the same ids, a list here: one drain applies many requests.
            request_id=total.request_ids,
        )
    return total
