"""The delivery loop: send queued webhook deliveries at least once, without letting a slow or
dead subscriber hold up anyone else.

The drain queues a delivery per (subscription, event) in the transaction that processes the
event. This loop leases due deliveries (no transaction stays open across an HTTP call), sends
each as its own task under a process-wide and a per-subscription concurrency cap, and records
the outcomes in one statement per round: delivered, retried with backoff, or dead-lettered.
A worker that dies mid-send leaves its leases to run out, and another sender tries again;
subscribers dedupe on the event id (`webhook-id`), the same on every attempt.

Egress is contained: connections reach only addresses the policy allows (service.infra.egress;
a refused destination is dead at once), each attempt has one deadline for connect, send and
the whole reply, at most READ_CAP bytes of a reply are read, and slots are shared so that
hanging receivers cannot take them all (see step).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec
import structlog

from domain.events import backoff_s
from domain.replies import summary
from domain.webhooks import WebhookMessage, event_id, headers
from service.infra import db, metrics, queries
from service.infra.egress import DestinationRefused, GuardedTransport
from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings

log = structlog.get_logger("delivery")
Q = "delivery"
_encode = msgspec.json.Encoder().encode
READ_CAP = 64 * 1024  # reply bytes read at most; past it the connection is closed, unread
KEEP_BYTES = 1024  # of those, kept for the error summary
FLUSH_DELAY_S = 0.01  # longest a finished send waits for its outcome to be written


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    ok: bool
    status: int | None
    error: str | None
    delay_s: float
    permanent: bool = False  # cannot succeed on a retry: dead-lettered at once


async def read_capped(response: httpx.Response, *, cap: int, keep: int) -> bytes:
    """The first `keep` bytes of the reply body, reading no more than about `cap` (a chunk
    past it): the rest stays unread, and closing the response then closes the connection."""
    kept = b""
    seen = 0
    async for chunk in response.aiter_raw():
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
        seen += len(chunk)
        if seen > cap:
            break
    return kept


def message_of(row: asyncpg.Record | dict[str, Any]) -> bytes:
    """The body for a claimed delivery: the outbox event as subscribers see it."""
    data = dict(row["payload"])
    data.setdefault("site_id", row["site_id"])
    created: datetime = row["event_created_at"]
    message = WebhookMessage(
        id=event_id(row["event_id"]), type=row["event_type"], timestamp=created, data=data
    )
    return _encode(message)


def correlation(row: asyncpg.Record | dict[str, Any]) -> dict[str, str]:
    """The ids every delivery log line carries: `event_id` (the webhook message id the
    receiver sees) and, for an event that came from an API request, its `request_id`."""
    ids = {"event_id": event_id(row["event_id"])}
    request_id = (row["payload"] or {}).get("request_id")
    if request_id:
        ids["request_id"] = str(request_id)
    return ids


class Deliverer:
    """One per worker process. `run_forever` until cancelled; `wake` after queueing work."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            transport=GuardedTransport(
                settings.webhook_networks, max_connections=settings.delivery_concurrency
            ),
            trust_env=False,  # no proxy from the environment: it would connect unchecked
            follow_redirects=False,
            timeout=None,  # noqa: S113 (one deadline per attempt bounds it all: _attempt)
            headers={"accept-encoding": "identity"},  # the capped read is of the raw bytes
        )
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: Counter[int] = Counter()  # in-flight sends per subscription
        self._failing: set[int] = set()  # subscriptions whose last attempt here failed
        self._outcomes: list[Outcome] = []
        # An attempt ends by its deadline, DELIVERY_TIMEOUT_S after the claim was sent (before
        # the database's now() that starts the lease), so the lease outlives it with room to
        # spare for a stalled event loop: one delivery is never in flight twice.
        self._lease_s = settings.delivery_timeout_s * 2 + 5
        # Slots kept for subscriptions with nothing in flight (see claim_deliveries).
        self._reserved = max(1, settings.delivery_concurrency // 4)
        self._wake_batch = max(1, settings.delivery_per_subscription // 2)
        self.sent = 0
        self.delivered = 0

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                # Cleared before the step, so a send finishing during it wakes the next one.
                self._wake.clear()
                try:
                    await self.step()
                except DatabaseUnavailable:
                    log.warning("delivery_paused", reason="postgres unreachable")
                except Exception:  # never let one bad round stop delivery for the process
                    log.exception("delivery_round_failed")
                    await asyncio.sleep(self._settings.delivery_poll_s)
                # Sends wake us in batches (see _send); the poll finds other processes' work.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.delivery_poll_s)
        finally:
            await self.close()

    async def step(self) -> int:
        """Record finished sends, then lease and start as many due deliveries as there is
        room for. Returns how many it started.

        Sharing the slots (DELIVERY_CONCURRENCY): a subscription has at most
        DELIVERY_PER_SUBSCRIPTION in flight, and one while its last attempt here failed (a dead
        or hanging receiver gets a probe, not a share); a freed slot goes to the subscription
        with the fewest in flight; and a quarter of the slots are only ever a subscription's
        first. So receivers that hang hold at most three quarters of the slots plus one each
        until their attempts reach the deadline, and one each after: a subscription with
        nothing in flight finds a slot while fewer than a quarter of them hang."""
        async with db.connection(self._pool) as conn:
            await self._flush(conn)
            free = self._settings.delivery_concurrency - len(self._tasks)
            if free <= 0:
                return 0
            known = {sid for sid, n in self._busy.items() if n > 0} | self._failing
            per_sub = self._settings.delivery_per_subscription
            # Before the claim is sent, so before the lease starts in the database.
            deadline = asyncio.get_running_loop().time() + self._settings.delivery_timeout_s
            rows = await conn.fetch(
                queries.load(Q)["claim_deliveries"],
                free,
                list(known),
                [self._busy[sid] for sid in known],
                per_sub,
                self._lease_s,
                [1 if sid in self._failing else per_sub for sid in known],
                self._reserved,
            )
        for row in rows:
            self._busy[row["subscription_id"]] += 1
            task = asyncio.create_task(self._send(row, deadline))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Deliver until nothing is owed (each delivery delivered or dead) or time is up; for
        tests and one-shot use."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = await self.step()
            if self._tasks:
                await asyncio.wait(
                    set(self._tasks),
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            elif not started:
                async with db.connection(self._pool) as conn:
                    if not await conn.fetchval(queries.load(Q)["owed"]):
                        break
                await asyncio.sleep(min(self._settings.delivery_poll_s, 0.05))
        async with db.connection(self._pool) as conn:
            await self._flush(conn)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(DatabaseUnavailable, asyncpg.PostgresError):
            async with db.connection(self._pool) as conn:
                await self._flush(conn)
        await self._client.aclose()

    async def _send(self, row: asyncpg.Record, deadline: float) -> None:
        try:
            outcome = await self._attempt(row, deadline)
            self._outcomes.append(outcome)
            if outcome.ok:
                self._failing.discard(row["subscription_id"])
            else:
                self._failing.add(row["subscription_id"])
        finally:
            self._busy[row["subscription_id"]] -= 1
            # One claim and one outcome write per batch of finished sends, not per send:
            # wake at once for a batch or the last send in flight, else within FLUSH_DELAY_S.
            in_flight = sum(self._busy.values())
            if len(self._outcomes) >= self._wake_batch or in_flight == 0:
                self._wake.set()
            elif len(self._outcomes) == 1:
                asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self._wake.set)

    async def _attempt(self, row: asyncpg.Record, deadline: float) -> Outcome:
        """One POST, all of it (connect, send, reply) by `deadline` (the loop's clock)."""
        started = time.perf_counter()
        if row["payload"] is None:
            # Not reachable while retention keeps owed events; dead-letter rather than guess.
            return Outcome(row["id"], False, None, "event no longer in the outbox", 0.0, True)
        msg_id = event_id(row["event_id"])
        status: int | None = None
        reply = b""
        error: str | None = None
        permanent = False
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                body = message_of(row)
                async with self._client.stream(
                    "POST",
                    row["url"],
                    content=body,
                    headers=headers(row["secret"], msg_id, int(time.time()), body),
                ) as response:
                    status = response.status_code
                    reply = await read_capped(response, cap=READ_CAP, keep=KEEP_BYTES)
        except TimeoutError:
            if not timeout.expired():
                raise
            if status is None:
                error = f"no reply within {self._settings.delivery_timeout_s:g} s"
            else:  # the status came, the rest of the reply did not: the status stands
                reply += f" (reply cut at {self._settings.delivery_timeout_s:g} s)".encode()
        except DestinationRefused as exc:
            error, permanent = str(exc), True
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # e.g. a URL httpx refuses: a failed attempt, not a crash
            log.exception("delivery_error", delivery_id=row["id"], **correlation(row))
            error = f"{type(exc).__name__}: {exc}"
        if error is None and status is not None and not 200 <= status < 300:
            error = f"HTTP {status}: {reply.decode(errors='replace')}"
        self.sent += 1
        elapsed = time.perf_counter() - started
        metrics.DELIVERY_SECONDS.observe(elapsed)
        if error is None:
            self.delivered += 1
            metrics.DELIVERIES.labels(result="delivered").inc()
            return Outcome(row["id"], True, status, None, 0.0)
        metrics.DELIVERIES.labels(result="failed").inc()
        error = summary(error, secrets=_secrets_of(row))
        delay = backoff_s(
            row["attempts"],
            base_s=self._settings.delivery_backoff_base_s,
            cap_s=self._settings.delivery_backoff_cap_s,
            jitter=self._rng.random(),
        )
        log.info(
            "delivery_failed",
            delivery_id=row["id"],
            subscription_id=row["subscription_id"],
            **correlation(row),
            attempt=row["attempts"],
            error=error,
            permanent=permanent,
            retry_in_s=None if permanent else round(delay, 1),
        )
        return Outcome(row["id"], False, status, error, delay, permanent)

    async def _flush(self, conn: asyncpg.Connection) -> None:
        if not self._outcomes:
            return
        done, self._outcomes = self._outcomes, []
        try:
            await conn.execute(
                queries.load(Q)["record_outcomes"],
                [o.delivery_id for o in done],
                [o.ok for o in done],
                [o.status for o in done],
                [o.error for o in done],
                [o.delay_s for o in done],
                self._settings.delivery_max_attempts,
                [o.permanent for o in done],
            )
        except BaseException:
            self._outcomes[:0] = done  # try again next round; the leases cover the wait
            raise


def _secrets_of(row: asyncpg.Record) -> list[str]:
    """What an error summary must never show: the signing secret and the URL's query."""
    return [row["secret"], urlsplit(row["url"]).query]
