"""The delivery loop: send queued webhook deliveries at least once, without letting a slow or
dead subscriber hold up anyone else.

The drain queues a delivery per (subscription, event) in the transaction that processes the
event. This loop leases due deliveries (no transaction stays open across an HTTP call), sends
each as its own task under a process-wide and a per-subscription concurrency cap, and records
the outcomes in one statement per round: delivered, retried with backoff, or dead-lettered.
A worker that dies mid-send leaves its leases to run out, and another sender tries again;
subscribers dedupe on the event id (`webhook-id`), the same on every attempt.
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

import asyncpg
import httpx
import msgspec
import structlog

from domain.events import backoff_s
from domain.webhooks import WebhookMessage, event_id, headers
from service.infra import db, metrics, queries
from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings

log = structlog.get_logger("delivery")
Q = "delivery"
_encode = msgspec.json.Encoder().encode
ERROR_CHARS = 500
FLUSH_DELAY_S = 0.01  # longest a finished send waits for its outcome to be written


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    ok: bool
    status: int | None
    error: str | None
    delay_s: float


def message_of(row: asyncpg.Record | dict[str, Any]) -> bytes:
    """The body for a claimed delivery: the outbox event as subscribers see it."""
    data = dict(row["payload"])
    data.setdefault("site_id", row["site_id"])
    created: datetime = row["event_created_at"]
    message = WebhookMessage(
        id=event_id(row["event_id"]), type=row["event_type"], timestamp=created, data=data
    )
    return _encode(message)


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
            timeout=settings.delivery_timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.delivery_concurrency),
        )
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: Counter[int] = Counter()  # in-flight sends per subscription
        self._outcomes: list[Outcome] = []
        # The lease outlives any send (timeout), with room for a slow outcome write.
        self._lease_s = settings.delivery_timeout_s * 2 + 5
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
        room for. Returns how many it started."""
        async with db.connection(self._pool) as conn:
            await self._flush(conn)
            free = self._settings.delivery_concurrency - len(self._tasks)
            if free <= 0:
                return 0
            busy = {sid: n for sid, n in self._busy.items() if n > 0}
            rows = await conn.fetch(
                queries.load(Q)["claim_deliveries"],
                free,
                list(busy),
                list(busy.values()),
                self._settings.delivery_per_subscription,
                self._lease_s,
            )
        for row in rows:
            self._busy[row["subscription_id"]] += 1
            task = asyncio.create_task(self._send(row))
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

    async def _send(self, row: asyncpg.Record) -> None:
        try:
            outcome = await self._attempt(row)
            self._outcomes.append(outcome)
        finally:
            self._busy[row["subscription_id"]] -= 1
            # One claim and one outcome write per batch of finished sends, not per send:
            # wake at once for a batch or the last send in flight, else within FLUSH_DELAY_S.
            in_flight = sum(self._busy.values())
            if len(self._outcomes) >= self._wake_batch or in_flight == 0:
                self._wake.set()
            elif len(self._outcomes) == 1:
                asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self._wake.set)

    async def _attempt(self, row: asyncpg.Record) -> Outcome:
        started = time.perf_counter()
        status: int | None = None
        error: str | None
        if row["payload"] is None:
            # Not reachable while retention keeps owed events; dead-letter rather than guess.
            return Outcome(row["id"], False, None, "event no longer in the outbox", 0.0)
        msg_id = event_id(row["event_id"])
        try:
            body = message_of(row)
            response = await self._client.post(
                row["url"],
                content=body,
                headers=headers(row["secret"], msg_id, int(time.time()), body),
            )
            status = response.status_code
            error = None if 200 <= status < 300 else f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # e.g. a URL httpx refuses: a failed attempt, not a crash
            log.exception("delivery_error", delivery_id=row["id"])
            error = f"{type(exc).__name__}: {exc}"
        self.sent += 1
        elapsed = time.perf_counter() - started
        metrics.DELIVERY_SECONDS.observe(elapsed)
        if error is None:
            self.delivered += 1
            metrics.DELIVERIES.labels(result="delivered").inc()
            return Outcome(row["id"], True, status, None, 0.0)
        metrics.DELIVERIES.labels(result="failed").inc()
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
            event_id=msg_id,
            attempt=row["attempts"],
            error=error[:200],
            retry_in_s=round(delay, 1),
        )
        return Outcome(row["id"], False, status, error[:ERROR_CHARS], delay)

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
            )
        except BaseException:
            self._outcomes[:0] = done  # try again next round; the leases cover the wait
            raise
