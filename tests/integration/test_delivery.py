"""Webhook delivery: signed, at least once, through receiver downtime, dead-lettered per
subscription without delaying the others, replayable, and through a worker killed mid-send;
each attempt under one deadline and a read cap, never in flight twice, and slow receivers
holding only their share of the sending slots."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.replies import summary
from service.delivery import Deliverer
from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.infra.settings import Settings
from tests.integration.helpers import batch, make_site, post_batch, readings, run_cli
from tests.integration.receiver import DRIP_REPLY, Receiver
from tests.integration.workers import WorkerProcess, wait_for

ADMIN = {"Authorization": "Bearer dev-admin-token"}
FAST = {
    "delivery_backoff_base_s": 0.05,
    "delivery_backoff_cap_s": 0.2,
    "delivery_timeout_s": 1.0,
    "delivery_poll_s": 0.05,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return Settings.from_env({}, **{**settings_fields(settings), **FAST})


def settings_fields(settings: Settings) -> dict[str, Any]:
    return {f: getattr(settings, f) for f in settings.__struct_fields__}


@pytest.fixture
async def pool(fast: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(fast)
    yield p
    await p.close()


async def subscribe(
    client: httpx.AsyncClient, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/v1/subscriptions",
        json={"url": url, "event_types": types or ["batch.accepted"], "description": "test"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    return body


async def drain(conn: asyncpg.Connection) -> None:
    while (await drain_batch(conn, limit=100, policy=RetryPolicy())).claimed:
        pass


async def send_batches(client: httpx.AsyncClient, site: int, n: int) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=n + 1)
    for i in range(n):
        items = readings(2, start=start + timedelta(hours=i), kg=1.0)
        assert (await post_batch(client, site, batch(items))).status_code == 202


async def batch_event_ids(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT id FROM outbox WHERE event_type = 'measurements.accepted'")
    return {f"evt_{r['id']}" for r in rows}


async def test_deliveries_reach_a_real_receiver_signed_with_the_standard_webhooks_scheme(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
    receiver: Receiver,
) -> None:
    sub = await subscribe(
        client, receiver.url, ["batch.accepted", "site.threshold_crossed", "site.leak_detected"]
    )
    site = await make_site(client, limit_kg=2.0)
    await send_batches(client, site, 2)  # 4 kg: past 80 % and 100 % of a 2 kg limit
    await drain(conn)
    await Deliverer(pool, fast).drain()

    verifier = Webhook(sub["secret"])
    messages = [verifier.verify(r.body, r.headers) for r in receiver.received]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_type.setdefault(m["type"], []).append(m)
    assert sorted(by_type) == ["batch.accepted", "site.threshold_crossed"]
    assert {m["id"] for m in by_type["batch.accepted"]} == await batch_event_ids(conn)
    assert [(m["data"]["site_id"], m["data"]["accepted"]) for m in by_type["batch.accepted"]] == [
        (site, 2),
        (site, 2),
    ]
    assert sorted(
        m["data"]["details"]["threshold_percent"] for m in by_type["site.threshold_crossed"]
    ) == [80.0, 100.0]
    for r in receiver.received:
        assert r.headers["webhook-id"] == r.message["id"]
        assert r.headers["content-type"] == "application/json"
    # A tampered body or another secret fails verification. Every message has an "id" (the
    # first one received may be an alert, which has no "batch" in it to tamper with).
    first = receiver.received[0]
    tampered = first.body.replace(b'"id"', b'"Id"', 1)
    assert tampered != first.body
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, first.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(first.body, first.headers)
    health = (await client.get("/v1/subscriptions")).json()["items"][0]["health"]
    assert health["delivered_last_hour"] == len(messages)
    assert (health["pending"], health["in_backoff"], health["dead"]) == (0, 0, 0)


async def test_receiver_downtime_loses_nothing_and_duplicates_carry_the_same_event_id(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
    receiver: Receiver,
) -> None:
    await subscribe(client, receiver.url)
    site = await make_site(client)
    receiver.stop()  # the port is closed: connection refused
    await send_batches(client, site, 6)
    await drain(conn)
    deliverer = Deliverer(pool, fast)
    await deliverer.drain(timeout_s=1.0)
    failed = await conn.fetchval("SELECT count(*) FROM deliveries WHERE attempts > 0")
    assert failed == 6 and receiver.received == []
    receiver.start()  # back, on the same port
    await wait_for(
        lambda: _step_until(deliverer, receiver, 6), timeout=20, message="never delivered"
    )
    ids = receiver.event_ids()
    assert set(ids) == await batch_event_ids(conn)  # none lost
    assert len(set(ids)) == 6  # any duplicate would carry an id already seen
    assert await conn.fetchval("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0


async def _step_until(deliverer: Deliverer, receiver: Receiver, n: int) -> bool:
    await deliverer.drain(timeout_s=0.5)
    return len(set(receiver.event_ids())) >= n


async def test_a_failing_receiver_is_dead_lettered_without_delaying_the_others(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
) -> None:
    good, failing, hanging = Receiver().start(), Receiver(mode="fail").start(), Receiver()
    hanging.mode, hanging.hang_s = "hang", 3.0
    hanging.start()
    try:
        for r in (good, failing, hanging):
            await subscribe(client, r.url)
        site = await make_site(client)
        await send_batches(client, site, 20)
        await drain(conn)
        settings = Settings.from_env(
            {}, **{**settings_fields(fast), "delivery_max_attempts": 3, "delivery_timeout_s": 2.0}
        )
        deliverer = Deliverer(pool, settings)
        runner = asyncio.create_task(deliverer.run_forever())
        started = time.monotonic()
        try:
            await wait_for(
                lambda: len(set(good.event_ids())) == 20, timeout=10, message="good starved"
            )
            good_done = time.monotonic() - started
            # The hanging receiver holds slots for 2 s deadlines; the good one did not wait.
            assert good_done < 1.5, good_done
            dead_q = (
                "SELECT count(*) FROM deliveries WHERE subscription_id = $1 AND dead_at IS NOT NULL"
            )
            await wait_for(
                _fetch_equals(conn, dead_q, 2, 20), timeout=15, message="never dead-lettered"
            )
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert failing.attempts == 20 * 3  # exactly the attempt budget, then dead
        assert good.attempts == 20
        listed = (await client.get("/v1/subscriptions/2/deliveries?status=dead")).json()["items"]
        assert len(listed) == 20
        assert all(d["attempts"] == 3 and d["last_status_code"] == 500 for d in listed)
        assert "receiver says no" in listed[0]["last_error"]

        # Replay the dead letters once the receiver is fixed: a dry run first, then for real.
        assert (await client.delete("/v1/subscriptions/3", headers=ADMIN)).status_code == 200
        dry = await client.post(
            "/v1/ops/deliveries/replay",
            json={"subscription_id": 2, "all_dead": True, "dry_run": True},
            headers=ADMIN,
        )
        assert (dry.json()["replayed"], len(dry.json()["delivery_ids"])) == (0, 20)
        failing.mode = "ok"
        real = await client.post(
            "/v1/ops/deliveries/replay",
            json={"subscription_id": 2, "all_dead": True},
            headers=ADMIN,
        )
        assert real.json()["replayed"] == 20
        await Deliverer(pool, fast).drain()
        assert set(failing.event_ids()) == set(good.event_ids())
    finally:
        for r in (good, failing, hanging):
            r.stop()


def _fetch_equals(conn: asyncpg.Connection, query: str, arg: int | None, expected: int) -> Any:
    async def check() -> bool:
        args = () if arg is None else (arg,)
        return bool(await conn.fetchval(query, *args) == expected)

    return check


async def test_subscription_api_validates_guards_and_disables(
    client: httpx.AsyncClient,
    anon_client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    receiver: Receiver,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"url": "ftp://example.com/x", "event_types": ["batch.accepted"]}, "/url"),
        ({"url": "http://u:p@example.com/x", "event_types": ["batch.accepted"]}, "/url"),
        ({"url": "https://example.com/x", "event_types": ["batch.acepted"]}, "/event_types"),
        ({"url": "https://example.com/x", "event_types": []}, "/event_types"),
        (
            {"url": "https://example.com/x", "event_types": ["site.stale"], "secret": "hunter2"},
            "/secret",
        ),
    ]
    for body, pointer in cases:
        response = await client.post("/v1/subscriptions", json=body, headers=ADMIN)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["pointer"] == pointer
    denied = await anon_client.post(
        "/v1/subscriptions", json={"url": receiver.url, "event_types": ["site.stale"]}
    )
    assert denied.status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0

    own = "whsec_" + "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1leGFjdGx5ISE="
    created = await client.post(
        "/v1/subscriptions",
        json={"url": receiver.url, "event_types": ["batch.accepted"], "secret": own},
        headers=ADMIN,
    )
    assert created.json()["secret"] == own
    sub_id = created.json()["subscription"]["id"]
    assert "secret" not in (await client.get("/v1/subscriptions")).text
    gone = await client.delete(f"/v1/subscriptions/{sub_id}", headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["disabled_at"] is not None
    site = await make_site(client)
    await send_batches(client, site, 1)
    await drain(conn)
    assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0  # disabled: none queued
    assert (await client.get("/v1/subscriptions")).json()["items"] == []
    listed = (await client.get("/v1/subscriptions?include_disabled=true")).json()["items"]
    assert [s["id"] for s in listed] == [sub_id]
    for path in (
        "/v1/subscriptions/999/deliveries",
        "/v1/subscriptions/99999999999999999999/deliveries",
    ):
        missing = await client.get(path)
        assert missing.status_code == 404, missing.text
    assert (await client.delete("/v1/subscriptions/999", headers=ADMIN)).status_code == 404
    for body in (
        {},
        {"delivery_ids": [1], "subscription_id": 1},
        {"delivery_ids": [1], "all_dead": True},
    ):
        bad = await client.post("/v1/ops/deliveries/replay", json=body, headers=ADMIN)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["type"] == "/problems/validation-error"
    no_token = await anon_client.post("/v1/ops/deliveries/replay", json={"all_dead": True})
    assert no_token.status_code == 401
    audit = await conn.fetch("SELECT action FROM ops_audit WHERE action LIKE 'sub%' ORDER BY id")
    assert [a["action"] for a in audit] == ["subscription.create", "subscription.disable"]


@pytest.mark.slow
async def test_a_worker_killed_mid_send_leaves_the_delivery_to_another_worker(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    hanging = Receiver(mode="hang", hang_s=60.0).start()
    try:
        await subscribe(client, hanging.url)
        site = await make_site(client)
        env = {"DELIVERY_TIMEOUT_S": "3", "DELIVERY_POLL_S": "0.1"}
        urls: dict[str, Any] = {
            "database_url": settings.database_url,
            "redis_url": settings.redis_url,
        }
        async with WorkerProcess(**urls, log_dir=tmp_path, name="a", env=env) as first:
            await send_batches(client, site, 1)
            await wait_for(lambda: hanging.attempts >= 1, timeout=15, message="never sent")
            await first.kill()  # mid-request: no outcome was recorded
        row = await conn.fetchrow("SELECT attempts, delivered_at, available_at FROM deliveries")
        assert row is not None
        assert (row["attempts"], row["delivered_at"]) == (1, None)
        hanging.mode = "ok"
        async with WorkerProcess(**urls, log_dir=tmp_path, name="b", env=env):
            # The lease (2 x timeout + 5 s) runs out, then the second worker delivers it.
            await wait_for(lambda: len(hanging.received) == 1, timeout=25, message="lost")
            delivered = "SELECT count(*) FROM deliveries WHERE delivered_at IS NOT NULL"
            await wait_for(_fetch_equals(conn, delivered, None, 1), timeout=5, message="unrecorded")
        assert hanging.event_ids() == list(await batch_event_ids(conn))
        row = await conn.fetchrow("SELECT attempts, delivered_at FROM deliveries")
        assert row is not None
        assert row["attempts"] == 2 and row["delivered_at"] is not None
    finally:
        hanging.stop()


async def test_cli_registers_lists_replays_and_disables(
    conn: asyncpg.Connection, db_url: str, receiver: Receiver
) -> None:
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    made = await run_cli(
        "subscriptions", "create", "--url", receiver.url, "--event-type", "site.stale", env=env
    )
    assert made.returncode == 0, made.stderr
    secret = next(w for w in made.stdout.split() if w.startswith("whsec_"))
    assert await conn.fetchval("SELECT secret FROM webhook_subscriptions") == secret
    assert secret not in made.stderr  # never in the log
    refused = await run_cli(
        "subscriptions", "create", "--url", "ftp://x", "--event-type", "site.stale", env=env
    )
    assert refused.returncode == 2
    listed = await run_cli("subscriptions", "list", env=env)
    assert receiver.url in listed.stdout and "dead 0" in listed.stdout
    await conn.execute(
        "INSERT INTO deliveries (subscription_id, event_id, event_type, dead_at, attempts)"
        " VALUES (1, 1, 'site.stale', now(), 12)"
    )
    dry = await run_cli(
        "deliveries", "replay", "--subscription", "1", "--all-dead", "--dry-run", env=env
    )
    assert dry.returncode == 0 and await conn.fetchval("SELECT dead_at FROM deliveries") is not None
    refused = await run_cli("deliveries", "replay", "--ids", "1", "--all-dead", env=env)
    assert refused.returncode == 2  # two modes at once: nothing replayed, nothing audited
    real = await run_cli("deliveries", "replay", "--subscription", "1", "--all-dead", env=env)
    assert real.returncode == 0
    row = await conn.fetchrow("SELECT dead_at, attempts FROM deliveries")
    assert row is not None
    assert (row["dead_at"], row["attempts"]) == (None, 0)
    replays = "SELECT count(*) FROM ops_audit WHERE action = 'deliveries.replay'"
    assert await conn.fetchval(replays) == 2  # the dry run and the real one, not the refused
    assert (await run_cli("subscriptions", "disable", "1", env=env)).returncode == 0
    assert await conn.fetchval("SELECT disabled_at FROM webhook_subscriptions") is not None


async def test_an_attempt_has_one_deadline_for_connect_send_and_the_whole_reply(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
) -> None:
    # A byte every 0.2 s: a per-read timeout of 1 s never fires; the reply never ends.
    drip = Receiver(mode="drip", drip_s=0.2).start()
    try:
        await subscribe(client, drip.url)
        site = await make_site(client)
        await send_batches(client, site, 1)
        await drain(conn)
        retry_later = {"delivery_backoff_base_s": 60, "delivery_backoff_cap_s": 60}
        once = Settings.from_env({}, **{**settings_fields(fast), **retry_later})
        await Deliverer(pool, once).drain(timeout_s=1.8)  # deadline 1 s: the attempt is over
        row = await conn.fetchrow("SELECT attempts, last_error, dead_at FROM deliveries")
        assert row is not None
        assert (row["attempts"], row["last_error"]) == (1, "no reply within 1 s")
        assert row["dead_at"] is None  # a timeout is retried (in a minute)
    finally:
        drip.stop()


def _hwm_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


async def test_a_huge_reply_is_read_only_to_the_cap_and_kept_as_a_short_clean_summary(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    huge = Receiver(mode="huge", huge_bytes=300 * 1024 * 1024).start()
    try:
        secret = (await subscribe(client, huge.url))["secret"]
        # Terminal escapes, a NUL, a bidi override, CR/LF and the secret, then 300 MB.
        huge.huge_prefix = f"\x1b[2J\x00no\u202e\r\nway {secret} ".encode() + b"x" * 4000
        site = await make_site(client)
        urls = {"database_url": settings.database_url, "redis_url": settings.redis_url}
        env = {"DELIVERY_TIMEOUT_S": "20"}  # the cap, not the deadline, ends this attempt
        async with WorkerProcess(**urls, log_dir=tmp_path, name="w", env=env) as worker:
            before = _hwm_kib(worker.pid)
            await send_batches(client, site, 1)
            failed = "SELECT count(*) FROM deliveries WHERE last_error IS NOT NULL"
            await wait_for(_fetch_equals(conn, failed, None, 1), timeout=15, message="no outcome")
            grown_mib = (_hwm_kib(worker.pid) - before) / 1024
        assert grown_mib < 50, grown_mib  # reading it all took > 600 MB (bytes, then text)
        assert huge.sent_bytes < 32 * 1024 * 1024, huge.sent_bytes  # socket buffers, no more
        row = await conn.fetchrow("SELECT last_status_code, last_error FROM deliveries")
        assert row is not None
        assert row["last_status_code"] == 500
        assert row["last_error"] == summary(
            "HTTP 500: " + huge.huge_prefix[:1024].decode(), secrets=[secret]
        )
        assert row["last_error"].startswith("HTTP 500: [2J no way [redacted] xxx")
        assert len(row["last_error"]) == 300 and row["last_error"].isprintable()
    finally:
        huge.stop()


async def test_five_dripping_receivers_leave_a_good_one_every_event_within_2_s(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Default delivery settings (32 slots, 8 per subscription, 5 s deadline) on a real
    worker: five receivers that drip a byte every 2 s want 40 slots between them."""
    drips = [Receiver(mode="drip", drip_s=2.0).start() for _ in range(5)]
    good = Receiver().start()
    try:
        for r in drips:
            await subscribe(client, r.url)
        await subscribe(client, good.url)
        site = await make_site(client)
        async with WorkerProcess(
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            log_dir=tmp_path,
            name="w",
        ):
            start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            sent: dict[str, float] = {}
            for i in range(16):  # 8 s: through the drips' first deadlines and retries
                items = readings(2, start=start - timedelta(hours=i + 1), kg=1.0)
                response = await post_batch(client, site, batch(items))
                assert response.status_code == 202
                sent[response.json()["batch_id"]] = time.monotonic()
                await asyncio.sleep(0.5)
            await wait_for(lambda: len(good.received) >= 16, timeout=5, message="good starved")
            latency = {r.message["data"]["batch_id"]: r.at - sent[r.message["data"]["batch_id"]]
                       for r in good.received}  # fmt: skip
        assert sorted(latency) == sorted(sent)
        assert max(latency.values()) < 2.0, latency
        assert all(r.attempts >= 1 for r in drips)  # they were sent to, and held their slots
    finally:
        for r in (*drips, good):
            r.stop()


@pytest.mark.slow
async def test_one_delivery_is_never_in_flight_twice(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    fast: Settings,
) -> None:
    """A reply that never ends, past the lease (2 x 1 s + 5 s): two senders, one delivery."""
    drip = Receiver(mode="drip", drip_s=0.1).start()
    try:
        await subscribe(client, drip.url)
        site = await make_site(client)
        await send_batches(client, site, 1)
        await drain(conn)
        # Backoff 2 s (jittered to 1-2 s), capped there, well past the drip, so the receiver has
        # noticed one attempt's end before the next begins even on a loaded machine. The cap
        # must be raised too: FAST's 0.2 s cap kept retries 0.1-0.2 s apart, and a clean-clone
        # CI run counted 2 in flight (the receiver's own lag, not two senders).
        slow_retries = {"delivery_backoff_base_s": 2.0, "delivery_backoff_cap_s": 2.0}
        settings = Settings.from_env({}, **{**settings_fields(fast), **slow_retries})
        senders = [Deliverer(pool, settings) for _ in range(2)]
        runners = [asyncio.create_task(d.run_forever()) for d in senders]
        try:
            await asyncio.sleep(9.0)
        finally:
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
        assert drip.in_flight_max == 1
        assert drip.attempts >= 3  # every attempt ended by its deadline, and another began
        assert len(DRIP_REPLY) * 0.1 > 9.0  # (the reply really never ended)
    finally:
        drip.stop()
