"""The ingest use case: admit a device's batch, then write its readings, idempotency record and
outbox event in one transaction, exactly once per Idempotency-Key."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import asyncpg
import msgspec
import structlog

from domain.credentials import hash_secret
from domain.fingerprint import canonical, canonical_fingerprint
from domain.idempotency import parse_key
from domain.readings import Reading, check_batch
from domain.receipts import IngestReceipt, classify
from service import devices, sites
from service.devices import DeviceIdentity, DeviceKeyCache
from service.infra import db, metrics, queries
from service.infra.db import valid_id
from service.infra.doorbell import Doorbell
from service.infra.errors import (
    DeviceBusy,
    DeviceMismatch,
    InvalidDeviceKey,
    KeyInFlight,
    KeyReused,
    MissingDeviceKey,
    RateLimited,
    RequestTimeout,
    ServiceError,
    SiteForbidden,
    SiteNotFound,
)
from service.infra.ratelimit import TokenBuckets, UnknownTokens
from service.infra.settings import Settings

ACCEPTED = 202
_encode = msgspec.json.Encoder().encode


class Batch(Protocol):
    """A decoded request body: the readings, and the device it says it comes from (if any)."""

    @property
    def device_id(self) -> str | None: ...

    @property
    def measurements(self) -> Sequence[Reading]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the API sends back: the stored answer, and whether it is a replay."""

    status_code: int
    body: bytes
    replayed: bool
    receipt: IngestReceipt | None = None
    event_id: int | None = None


class Ingest:
    """The ingest use case with what it keeps per process: the device keys it found live, each
    device's rate allowance, and the doorbell it rings after a commit."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        doorbell: Doorbell,
        unknown: UnknownTokens | None = None,
        lane_pool: asyncpg.Pool | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.doorbell = doorbell
        self.keys = DeviceKeyCache()
        self.rates = TokenBuckets(settings.device_rate_per_s, settings.device_burst)
        # Shared with the operator gate: one guessing budget per client address.
        self.unknown = unknown or UnknownTokens(
            settings.auth_failures_per_s, settings.auth_failure_burst
        )
        self.in_flight: Counter[int] = Counter()  # requests per device key being handled
        self.lane = FastLane(
            lane_pool or pool,
            statements=settings.ingest_statements,
            group_readings=settings.ingest_group_readings,
        )

    async def accept(
        self,
        *,
        site_id: int,
        device_key: str | None,
        idempotency_key: str | None,
        read_batch: Callable[[], Awaitable[Batch]],
        request_id: str,
        client: str = "",
    ) -> Outcome:
        """Who is sending, may they post here and this fast, which request is it; only then
        read the body (so a stranger costs no body read), check it and record it."""
        if device_key is None:
            raise MissingDeviceKey()
        structlog.contextvars.bind_contextvars(site_id=site_id)
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                device = await self._admit(site_id, device_key, client)
                if self.in_flight[device.key_id] >= self.settings.device_max_in_flight:
                    raise DeviceBusy()
                self.in_flight[device.key_id] += 1
                try:
                    outcome = await self._accept(
                        device, site_id, idempotency_key, read_batch, request_id
                    )
                finally:
                    self.in_flight[device.key_id] -= 1
                    if not self.in_flight[device.key_id]:
                        del self.in_flight[device.key_id]
        except TimeoutError as exc:
            raise RequestTimeout() from exc
        if outcome.event_id is not None:
            self.doorbell.ring()  # after commit; never waits for Redis
        _count(outcome)
        return outcome

    async def _accept(
        self,
        device: DeviceIdentity,
        site_id: int,
        idempotency_key: str | None,
        read_batch: Callable[[], Awaitable[Batch]],
        request_id: str,
    ) -> Outcome:
        """The admitted device's request: its key, its body, its rules, recorded once."""
        key = parse_key(idempotency_key)
        batch = await read_batch()
        if batch.device_id is not None and batch.device_id != device.device_id:
            raise DeviceMismatch()
        now = datetime.now(UTC)
        check_batch(batch.measurements, limits=self.settings.batch_limits, now=now)
        try:
            submission = submit(
                site_id=site_id,
                device_id=device.device_id,
                key=key,
                readings=batch.measurements,
                request_id=request_id,
                retention=self.settings.idempotency_retention,
                key_id=device.key_id,
            )
            outcome = await self._record(submission)
        except InvalidDeviceKey:
            self.keys.forget(device.key_id)  # revoked by another process meanwhile
            raise
        return outcome

    async def _record(self, batch: Submission) -> Outcome:
        """record_batch on the API's connections: a small batch's fast path through the lane,
        a larger one's on its own statement at once (grouping saves little on it, and it
        would hold one of the lane's few statements), then the careful path if need be."""
        outcome = None
        if 0 < len(batch.ordered) <= self.settings.ingest_lane_max_readings:
            outcome = await self.lane.record(batch)
        elif batch.ordered:
            async with db.connection(self.pool) as conn:
                with contextlib.suppress(_Overlap):  # rolled back: nothing of it was written
                    outcome = await _record_fast(conn, batch)
        if outcome is None:
            async with db.connection(self.pool) as conn:
                outcome = await _record_careful(conn, batch)
        return outcome

    async def _admit(self, site_id: int, device_key: str, client: str) -> DeviceIdentity:
        """The key's device, if it may post to this site now (401, 404, 403 or 429 if not)."""
        device = self.keys.get(device_key)
        if device is None:
            device = await self._look_up(device_key, client)
        structlog.contextvars.bind_contextvars(device_id=device.device_id)
        if site_id not in device.site_ids:
            async with db.connection(self.pool) as conn:
                await sites.get_site(conn, site_id=site_id)  # 404 for an unknown site
            raise SiteForbidden(f"this device key may not post to site {site_id}")
        wait = self.rates.take(device.key_id)
        if wait:
            raise RateLimited(wait)
        return device

    async def _look_up(self, device_key: str, client: str) -> DeviceIdentity:
        """A key this process has not seen live: refused without a query when the address is
        out of guesses or the key is a known miss; else looked up and remembered."""
        wait = self.unknown.wait_s(client)
        if wait:
            raise RateLimited(wait)
        digest = hash_secret(device_key)
        if self.unknown.known(digest):
            self.unknown.failed(client, digest)
            raise InvalidDeviceKey()
        try:
            async with db.connection(self.pool) as conn:
                device = await devices.authenticate_device(conn, device_key)
        except InvalidDeviceKey:
            self.unknown.failed(client, digest)
            raise
        self.keys.remember(device_key, device)
        return device


def _count(outcome: Outcome) -> None:
    """The outcome in the metrics and in the request's log line."""
    if outcome.replayed:
        metrics.REPLAYS.inc()
    if outcome.receipt is None:
        structlog.contextvars.bind_contextvars(replayed=outcome.replayed)
        return
    r = outcome.receipt
    metrics.count_receipt(r.accepted, r.duplicates, len(r.conflicts))
    structlog.contextvars.bind_contextvars(
        accepted=r.accepted,
        duplicates=r.duplicates,
        conflicts=len(r.conflicts),
        replayed=outcome.replayed,
    )


@dataclass(frozen=True, slots=True)
class Submission:
    """One batch as the statements take it: readings ordered by window, fingerprinted."""

    site_id: int
    device_id: str
    scope: str  # idempotency keys are scoped to (site, device)
    key: str
    ordered: list[tuple[datetime, float]]
    fingerprint: bytes
    request_id: str
    retention: timedelta
    key_id: int | None  # the device key to re-check in the transaction (None: no check)

    @property
    def lock_id(self) -> int:
        return _lock_id(self.scope, self.key)

    def arrays(self) -> tuple[str, str]:
        """The windows and the kilograms as array literals for the statements."""
        return (
            _array_literal([ts for ts, _ in self.ordered]),
            _array_literal([kg for _, kg in self.ordered]),
        )


def _lock_id(scope: str, key: str) -> int:
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _Overlap(Exception):
    """The fast path met a window or the key's answer that another transaction stored
    meanwhile; it wrote nothing; take the careful one."""


async def record_batch(conn: asyncpg.Connection, batch: Submission) -> Outcome:
    """Apply a validated batch (`submit`) exactly once per (site, device, Idempotency-Key).

    The advisory lock makes a concurrent retry of the same key fail fast (KeyInFlight)
    instead of waiting. An earlier commit of that key is found by the lookup, or, when it
    committed while the fast path's statement started, by the answer's unique key.

    batch.key_id is the device key the request came with: the transaction refuses it
    (InvalidDeviceKey) unless it is still live, so the caller may have looked it up earlier.

    Most batches are all new: they take a fast path, one statement of plain inserts that is
    its own transaction (one round trip). A batch with a stored window, or a key whose answer
    has expired, takes the careful path (insert what is new, itemise the rest); so does one
    whose fast path met a concurrent commit of a window or of the key, which wrote nothing.
    `conn` is not in a transaction: each path makes its own.
    """
    assert not conn.is_in_transaction(), "record_batch makes its own transactions"
    if batch.ordered:
        try:
            outcome = await _record_fast(conn, batch)
        except _Overlap:
            outcome = None  # rolled back: nothing of it was written
        if outcome is not None:
            return outcome
    return await _record_careful(conn, batch)


def submit(
    *,
    site_id: int,
    device_id: str,
    key: str,
    readings: Sequence[Reading],
    request_id: str,
    retention: timedelta,
    key_id: int | None = None,
) -> Submission:
    """A validated batch as the statements take it (SiteNotFound for an id out of range)."""
    if not valid_id(site_id):
        raise SiteNotFound(f"site {site_id} does not exist")
    # Ordered by window: concurrent batches lock overlapping windows in one order (no
    # deadlock). The fingerprint and the statement's arrays share the one sorted list.
    ordered = canonical(readings)
    return Submission(
        site_id=site_id,
        device_id=device_id,
        scope=f"{site_id}/{device_id}",
        key=key,
        ordered=ordered,
        fingerprint=canonical_fingerprint(device_id, ordered),
        request_id=request_id,
        retention=retention,
        key_id=key_id,
    )


def _array_literal(values: list[Any]) -> str:
    """'{...}' for a text-to-array cast; msgspec's JSON strings and numbers are valid elements."""
    return "{" + _encode(values)[1:-1].decode() + "}"


def _answered(found: asyncpg.Record, batch: Submission) -> Outcome | None:
    """What the lookup says before anything is written: the stored answer to replay, or the
    refusal (revoked device key, key reused with another body, unknown site); None if the
    batch is to be recorded."""
    if not found["key_live"]:  # revoked since the caller looked it up
        raise InvalidDeviceKey()
    if found["fingerprint"] is not None and not found["expired"]:
        if found["fingerprint"] != batch.fingerprint:
            raise KeyReused()
        return Outcome(found["status_code"], found["response_body"], replayed=True)
    if not found["site_exists"]:
        raise SiteNotFound(f"site {batch.site_id} does not exist")
    return None


async def _record_fast(
    conn: asyncpg.Connection, batch: Submission, answer: _FastAnswer | None = None
) -> Outcome | None:
    """Fast path: the lock, the lookup and, when every reading is new, every insert in one
    statement run as its own transaction (one round trip, committed when it returns). None
    when the batch needs the careful path; _Overlap when the statement met a concurrent
    commit and wrote nothing."""
    q = queries.load("ingest")
    answer = answer or _FastAnswer(batch)
    stamps, kgs = batch.arrays()
    try:
        found = await conn.fetchrow(
            q["insert_new_batch_event_and_answer"],
            batch.scope,
            batch.key,
            batch.site_id,
            stamps,
            kgs,
            batch.device_id,
            answer.batch_id,
            batch.request_id,
            batch.ordered[0][0],
            batch.ordered[-1][0],
            batch.fingerprint,
            ACCEPTED,
            answer.body,
            batch.retention,
            batch.key_id,
            batch.lock_id,
        )
    except asyncpg.UniqueViolationError as exc:
        raise _Overlap() from exc
    assert found is not None  # the statement always returns one row
    return answer.judge(found)


class _FastAnswer:
    """A batch's answer if all of it is new (the fast path stores it only if so), and what
    the fast path's row for the batch means."""

    __slots__ = ("batch", "batch_id", "body", "receipt")

    def __init__(self, batch: Submission) -> None:
        self.batch = batch
        self.batch_id = uuid4()
        self.receipt = _receipt(self.batch_id, batch, [])
        self.body = _encode(self.receipt)

    def judge(self, found: asyncpg.Record) -> Outcome | None:
        if not found["locked"]:
            raise KeyInFlight()
        answered = _answered(found, self.batch)
        if answered is not None:
            return answered
        if not found["fast"]:
            return None
        return Outcome(
            ACCEPTED, self.body, replayed=False, receipt=self.receipt, event_id=found["event_id"]
        )


class FastLane:
    """The fast path of concurrent small requests, several to a statement (group commit).

    The API sends it batches of up to INGEST_LANE_MAX_READINGS readings. At most `statements`
    fast-path statements run at once per process, each on a connection
    of the lane's own pool. A request that finds one free runs alone, at once, on the
    one-batch statement: a quiet API adds no wait. When all are busy, requests wait, and the
    next statement to start takes every waiting one (up to `group_readings` readings in all):
    one round trip, one transaction and one commit for the group. Under load that is most
    of what a small request costs, in the API (sends and wake-ups) and in PostgreSQL
    (executor start, commit record, WAL flush).

    Each member is judged on its own, as alone (its lock, stored answer, site, device key,
    stored windows): one that may not take the fast path writes nothing and goes on to the
    careful path; the others commit. A group that fails as a whole (a window or key stored
    meanwhile, by another transaction or another member: unique_violation) wrote nothing,
    and each member runs its own statement, exactly as without the lane. A lost database
    fails every member alike. Every member's readings, answer and event commit together;
    none commits without its own answer and event.

    The pool's sessions keep generic plans (`plan_cache_mode`): PostgreSQL's default plans
    the group statement afresh for each run (~0.35 ms of its CPU, more than the group
    saves); planned once, a 4-member group costs it half of 4 lone statements.

    A request that gives up (its deadline) while waiting leaves the queue; once its group
    has started, its member commits or not with the group, and a retry finds its stored
    answer, as when a lone statement's reply is lost.
    """

    def __init__(self, pool: asyncpg.Pool, *, statements: int, group_readings: int) -> None:
        self._pool = pool
        self._statements = statements
        self._group_readings = group_readings
        self._running = 0
        self._waiting: list[tuple[_FastAnswer, asyncio.Future[Outcome | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def record(self, batch: Submission) -> Outcome | None:
        """The fast path's outcome for `batch`; None when it needs the careful path."""
        answer = _FastAnswer(batch)
        if self._running < self._statements:
            self._running += 1
            try:
                return await self._alone(answer)
            finally:
                self._running -= 1
                self._start_waiting()
        future: asyncio.Future[Outcome | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((answer, future))
        try:
            return await future
        except asyncio.CancelledError:  # the request gave up: not in a statement yet, not at all
            with contextlib.suppress(ValueError):
                self._waiting.remove((answer, future))
            raise
        except _RunAlone:  # the group wrote nothing: its own statement, as without the lane
            return await self._alone(answer)

    async def _alone(self, answer: _FastAnswer) -> Outcome | None:
        try:
            async with db.connection(self._pool) as conn:
                return await _record_fast(conn, answer.batch, answer)
        except _Overlap:
            return None  # rolled back: nothing of it was written

    def _start_waiting(self) -> None:
        if self._waiting and self._running < self._statements:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run_group(self._take()))
            self._tasks.add(task)  # held: the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _run_group(
        self, group: list[tuple[_FastAnswer, asyncio.Future[Outcome | None]]]
    ) -> None:
        try:
            if len(group) == 1:  # one waiting: the one-batch statement costs less
                answer, future = group[0]
                await _settle(future, self._alone(answer))
                return
            try:
                rows = await self._group_statement([a for a, _ in group])
            except Exception as exc:  # e.g. DatabaseUnavailable: every member's answer
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                return
            except BaseException:
                for _, future in group:
                    future.cancel()
                raise
            for (answer, future), row in zip(group, rows, strict=True):
                if row is None:
                    if not future.done():
                        future.set_exception(_RunAlone())
                    continue
                await _settle(future, _judged(answer, row))
        finally:
            self._running -= 1
            self._start_waiting()

    def _take(self) -> list[tuple[_FastAnswer, asyncio.Future[Outcome | None]]]:
        """The waiting requests, oldest first, up to `group_readings` readings (at least one)."""
        readings = 0
        for i, (answer, _) in enumerate(self._waiting):
            readings += len(answer.batch.ordered)
            if i and readings > self._group_readings:
                break
        else:
            i = len(self._waiting)
        group, self._waiting = self._waiting[:i], self._waiting[i:]
        return group

    async def _group_statement(self, group: list[_FastAnswer]) -> list[asyncpg.Record | None]:
        """One row per member, in order; a None each when the group wrote nothing (a member
        met a window or key stored meanwhile) and every member is to run alone."""
        q = queries.load("ingest")
        members: list[int] = []
        stamps: list[datetime] = []
        kgs: list[float] = []
        for n, answer in enumerate(group, start=1):
            members.extend([n] * len(answer.batch.ordered))
            stamps.extend(ts for ts, _ in answer.batch.ordered)
            kgs.extend(kg for _, kg in answer.batch.ordered)
        batches = [a.batch for a in group]
        try:
            async with db.connection(self._pool) as conn:
                rows = await conn.fetch(
                    q["insert_new_batches_events_and_answers"],
                    [b.scope for b in batches],
                    [b.key for b in batches],
                    [b.site_id for b in batches],
                    [b.device_id for b in batches],
                    [a.batch_id for a in group],
                    [b.request_id for b in batches],
                    [b.ordered[0][0] for b in batches],
                    [b.ordered[-1][0] for b in batches],
                    [b.fingerprint for b in batches],
                    [a.body for a in group],
                    [b.key_id for b in batches],
                    [b.lock_id for b in batches],
                    members,
                    _array_literal(stamps),
                    _array_literal(kgs),
                    [b.retention for b in batches],
                    ACCEPTED,
                )
        except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
            return [None] * len(group)  # rolled back: nothing of it was written
        metrics.INGEST_GROUP.observe(len(group))
        return list(rows)


class _RunAlone(Exception):
    """A group wrote nothing (a member met a window or key stored meanwhile): run alone."""


async def _judged(answer: _FastAnswer, row: asyncpg.Record) -> Outcome | None:
    return answer.judge(row)


async def _settle(
    future: asyncio.Future[Outcome | None], outcome: Awaitable[Outcome | None]
) -> None:
    """The member's outcome, or its refusal (KeyInFlight, KeyReused, ...), to its request."""
    try:
        result = await outcome
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)


async def _record_careful(conn: asyncpg.Connection, batch: Submission) -> Outcome:
    """Careful path, in a transaction holding the key's lock: the stored answer, or insert
    what is new and itemise the rest."""
    q = queries.load("ingest")
    async with conn.transaction():
        if not await conn.fetchval(q["try_lock_key"], batch.lock_id):
            raise KeyInFlight()
        found = await conn.fetchrow(
            q["find_answer_check_site_and_key"],
            batch.scope,
            batch.key,
            batch.site_id,
            batch.key_id,
        )
        assert found is not None  # a LEFT JOIN on one row
        answered = _answered(found, batch)
        if answered is not None:
            return answered
        return await _insert_what_is_new(conn, q, batch, uuid4())


async def _insert_what_is_new(
    conn: asyncpg.Connection, q: dict[str, str], batch: Submission, batch_id: UUID
) -> Outcome:
    """Careful path: some window of the batch may be stored already; insert the rest, itemise
    duplicates and conflicts, and store the answer under the key."""
    stamps, kgs = batch.arrays()
    row = await conn.fetchrow(
        q["insert_new_readings_and_event_list_others"],
        batch.site_id,
        stamps,
        kgs,
        batch.device_id,
        batch_id,
        batch.request_id,
    )
    assert row is not None  # an aggregate without GROUP BY returns one row
    others = await _stored_values(conn, q["stored_values"], batch.site_id, row)
    receipt = _receipt(batch_id, batch, others, row["accepted"])
    body = _encode(receipt)
    saved = await conn.execute(
        q["save_answer"],
        batch.scope,
        batch.key,
        batch.fingerprint,
        batch.site_id,
        batch_id,
        ACCEPTED,
        body,
        batch.retention,
    )
    if saved != "INSERT 0 1":  # the lock and lookup above make this unreachable
        raise ServiceError("idempotency record was not written")
    return Outcome(ACCEPTED, body, replayed=False, receipt=receipt, event_id=row["event_id"])


def _receipt(
    batch_id: UUID,
    batch: Submission,
    others: list[tuple[datetime, float, float]],
    accepted: int | None = None,
) -> IngestReceipt:
    duplicates, conflicts = classify(others)
    received = len(batch.ordered)
    return IngestReceipt(
        batch_id=batch_id,
        site_id=batch.site_id,
        device_id=batch.device_id,
        received=received,
        accepted=received if accepted is None else accepted,
        duplicates=duplicates,
        conflicts=conflicts,
    )


async def _stored_values(
    conn: asyncpg.Connection, query: str, site_id: int, row: asyncpg.Record
) -> list[tuple[datetime, float, float]]:
    """(ts, received, stored) for readings that were not new.

    A window another transaction committed while this insert waited on it is invisible to
    the insert statement's snapshot (stored is NULL); a fresh statement reads it.
    """
    others = list(zip(row["other_ts"], row["other_received"], row["other_stored"], strict=True))
    missing = [ts for ts, _, stored in others if stored is None]
    if missing:
        late = {r["ts"]: r["methane_kg"] for r in await conn.fetch(query, site_id, missing)}
        others = [(ts, kg, late[ts] if stored is None else stored) for ts, kg, stored in others]
    return others
