"""The stream relay: publish every applied outbox event to NATS JetStream, at least once, with
the event id as `Nats-Msg-Id` so JetStream keeps it once.

The drain queues a `stream_relay` row per event in the transaction that applies it (only with
NATS_URL set). This loop leases the lowest due ids (no transaction stays open across a
publish), publishes them in that order, pipelined, and marks relayed only what JetStream
acknowledged; the rest backs off. The position is in Postgres, so any worker takes over a dead
one's lease when it runs out, and its republish is dropped by JetStream's duplicate window
(which the settings keep longer than the lease).

Subjects: `<prefix>.<event type>.<site id>` (emissions.v1.batch.accepted.12). Headers: the
CloudEvents 1.0 binary mode attributes (ce-id, ce-type, ce-source, ce-time, ce-specversion,
ce-subject, content-type) and Nats-Msg-Id; the body is the webhook body (delivery.message_of).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import datetime
from typing import Any

import asyncpg
import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from domain.events import backoff_s
from domain.webhooks import event_id
from service.delivery import message_of
from service.infra import db, metrics, queries
from service.infra.errors import DatabaseUnavailable
from service.infra.settings import Settings

log = structlog.get_logger("stream")
Q = "stream"
SPEC_VERSION = "1.0"
RECONNECT_ATTEMPTS = 10


def subject_of(prefix: str, event_type: str, site_id: int | None) -> str:
    """emissions.v1.batch.accepted.12: consumers filter by type, by site, or both."""
    return f"{prefix}.{event_type}.{site_id if site_id is not None else '_'}"


def headers_of(row: asyncpg.Record | dict[str, Any], *, source: str) -> dict[str, str]:
    """Nats-Msg-Id (JetStream's dedupe key) and the CloudEvents attributes, binary mode."""
    msg_id = event_id(row["event_id"])
    created: datetime = row["event_created_at"]
    return {
        "Nats-Msg-Id": msg_id,
        "ce-specversion": SPEC_VERSION,
        "ce-id": msg_id,
        "ce-type": row["event_type"],
        "ce-source": source,
        "ce-subject": f"sites/{row['site_id']}",
        "ce-time": created.isoformat().replace("+00:00", "Z"),
        "content-type": "application/json",
    }


def stream_config(settings: Settings) -> StreamConfig:
    return StreamConfig(
        name=settings.stream_name,
        description="emissions-engine outbox events (CloudEvents headers, webhook bodies)",
        subjects=[f"{settings.stream_subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,  # consumers come and go; messages stay until limits
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=float(settings.stream_max_age_s),
        max_bytes=settings.stream_max_bytes,
        duplicate_window=float(settings.stream_duplicate_window_s),
        num_replicas=settings.stream_replicas,
    )


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create the stream, or bring an existing one to the configured limits."""
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream_name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
        log.info("stream_created", stream=settings.stream_name, subjects=config.subjects)
        return
    await js.update_stream(config)


class Relay:
    """One per worker process (with NATS_URL). `run_forever` until cancelled; `wake` after a
    drain queued events."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, rng: random.Random | None = None):
        assert settings.nats_url is not None
        self._pool = pool
        self._settings = settings
        self._url = settings.nats_url
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._nc: Nats | None = None
        self._js: JetStreamContext | None = None
        self._ready = False  # the stream was created or checked on this connection
        self._failures = 0  # rounds in a row that failed: the backoff of the next
        self.published = 0
        self.relayed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                self._wake.clear()
                wait = self._settings.stream_poll_s
                try:
                    more = await self.step()
                    self._failures = 0
                    if more:
                        continue  # a full claim: there may be more due at once
                except DatabaseUnavailable:
                    log.warning("relay_paused", reason="postgres unreachable")
                except Exception as exc:  # never let one bad round stop the relay
                    self._failures += 1
                    wait = self._delay(self._failures)
                    log.warning("relay_round_failed", error=_text(exc), retry_in_s=round(wait, 2))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            await self.close()

    async def connect(self) -> JetStreamContext:
        """The JetStream context, connecting (and checking the stream) when needed. The client
        reconnects by itself after a drop (publishes meanwhile time out and back off) and
        closes after RECONNECT_ATTEMPTS failed tries; the next round connects anew."""
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(
                self._url,
                name="emissions-relay",
                connect_timeout=2,
                # Finite, so that a connect while NATS is down fails (and says so) after
                # ~5 s instead of blocking for good; a closed client is replaced next round.
                allow_reconnect=True,
                max_reconnect_attempts=RECONNECT_ATTEMPTS,
                reconnect_time_wait=0.5,
                error_cb=_quiet,
                disconnected_cb=_disconnected,
                reconnected_cb=_reconnected,
            )
            self._js = self._nc.jetstream(timeout=self._settings.stream_publish_timeout_s)
            self._ready = False
        assert self._js is not None
        if not self._ready:
            await ensure_stream(self._js, self._settings)
            self._ready = True
        return self._js

    async def step(self) -> bool:
        """Lease due events, publish them in order, record the acks. True if the claim was
        full (more may be due)."""
        js = await self.connect()
        limit = self._settings.stream_batch_size
        q = queries.load(Q)
        async with db.connection(self._pool) as conn:
            rows = await conn.fetch(q["claim_relay"], limit, self._settings.stream_lease_s)
        if not rows:
            return False
        # The lease began at the database's now(), after this: stop publishing well before it
        # ends, so a claim is never published by two relays at once on our side.
        stop_at = time.monotonic() + self._settings.stream_lease_s * 0.8
        rows = sorted(rows, key=lambda r: r["event_id"])
        acked, error = await self._publish(js, rows, stop_at)
        failed = [r["event_id"] for r in rows if r["event_id"] not in acked]
        async with db.connection(self._pool) as conn:
            if acked:
                await conn.execute(q["mark_relayed"], sorted(acked))
            if failed:
                attempts = max(r["attempts"] for r in rows)
                await conn.execute(q["back_off"], failed, self._delay(attempts), error)
        self.relayed += len(acked)
        metrics.STREAM_RELAYED.inc(len(acked))
        if failed:
            metrics.STREAM_FAILED.inc(len(failed))
            log.warning("relay_failed", events=len(failed), relayed=len(acked), error=error)
            if "no response from stream" in (error or "").lower():
                self._ready = False  # the stream is gone (a new server): create it again
            raise RelayIncomplete(error)
        log.info("relayed", events=len(acked), first_event_id=rows[0]["event_id"])
        return len(rows) == limit

    async def _publish(
        self, js: JetStreamContext, rows: list[asyncpg.Record], stop_at: float
    ) -> tuple[set[int], str | None]:
        """Publish rows in order without waiting for each ack (pipelined), then wait for the
        acks. Returns the acknowledged event ids and the first error."""
        source = self._settings.stream_source
        prefix = self._settings.stream_subject_prefix
        futures: list[tuple[int, asyncio.Future[Any]]] = []
        error: str | None = None
        for row in rows:
            if row["payload"] is None:  # retention keeps owed events; never guess a body
                error = error or f"event {row['event_id']} is no longer in the outbox"
                continue
            if time.monotonic() > stop_at:
                error = error or "lease nearly over: the rest waits for the next claim"
                break
            try:
                future = await js.publish_async(
                    subject_of(prefix, row["event_type"], row["site_id"]),
                    message_of(row),
                    wait_stall=self._settings.stream_publish_timeout_s,
                    headers=headers_of(row, source=source),
                )
            except Exception as exc:
                error = error or _text(exc)
                break  # in order: nothing after a publish that did not go out
            futures.append((row["event_id"], future))
            self.published += 1
        acked: set[int] = set()
        if futures:
            timeout = max(
                0.1, min(self._settings.stream_publish_timeout_s, stop_at - time.monotonic())
            )
            done, pending = await asyncio.wait([f for _, f in futures], timeout=timeout)
            for f in pending:
                f.cancel()
            for eid, f in futures:
                if f in done and not f.cancelled() and f.exception() is None:
                    acked.add(eid)
                elif error is None:
                    problem = None if f.cancelled() or f not in done else f.exception()
                    error = _text(problem) if problem else "no ack within the publish timeout"
        return acked, error

    def _delay(self, attempts: int) -> float:
        return backoff_s(
            max(1, attempts),
            base_s=self._settings.stream_backoff_base_s,
            cap_s=self._settings.stream_backoff_cap_s,
            jitter=self._rng.random(),
        )

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Relay until nothing is owed or time is up; for tests and one-shot use."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(RelayIncomplete):
                if await self.step():
                    continue
            async with db.connection(self._pool) as conn:
                if not await conn.fetchval(queries.load(Q)["owed"]):
                    return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()


class RelayIncomplete(Exception):
    """Some events of a claim were not acknowledged; they back off."""


def _text(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _quiet(exc: Exception) -> None:
    log.debug("nats_error", error=_text(exc))


async def _disconnected() -> None:
    log.warning("nats_disconnected")


async def _reconnected() -> None:
    log.info("nats_reconnected")
