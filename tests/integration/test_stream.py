"""The outbox relayed to NATS JetStream: every applied event in the stream exactly once as a
durable consumer sees it, with CloudEvents headers and the webhook body, through a worker
killed mid-publish and NATS stopped and restarted. A nats-server of the harness's own (never
the one that may run on 4222)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from service.alerts import AlertRules
from service.delivery import message_of
from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.infra.settings import Settings
from service.stream import Relay
from tests.harness.processes import wait_for
from tests.harness.services import NatsServer, start_nats
from tests.integration.helpers import batch, make_site, post_batch, readings, run_cli
from tests.integration.workers import WorkerProcess, wait_drained

_streams = itertools.count()
FAST = {
    "stream_poll_s": 0.1,
    "stream_backoff_base_s": 0.2,
    "stream_backoff_cap_s": 1.0,
    "stream_publish_timeout_s": 1.0,
    "stream_lease_s": 3.0,
    # Readings go 200 h back, which early in a month is a closed month: every drain would then
    # add a report.restated event, and how many events a test expects would hang on the date.
    # A grace of 400 days keeps every month these tests write open.
    "report_grace_h": 400 * 24.0,
}
RULES = AlertRules(report_grace=timedelta(hours=FAST["report_grace_h"]))


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    server = start_nats()
    yield server
    server.close()


@pytest.fixture
def stream(settings: Settings, nats_server: NatsServer) -> Settings:
    """Settings with the stream on: a stream and subject prefix of this test's own (event ids
    start at 1 in every test database, and msg ids must not meet another test's)."""
    n = next(_streams)
    fields = {f: getattr(settings, f) for f in settings.__struct_fields__}
    fields |= FAST | {
        "nats_url": nats_server.url,
        "stream_name": f"EMISSIONS_T{n}",
        "stream_subject_prefix": f"t{n}.emissions.v1",
    }
    return Settings.from_env({}, **fields)


@pytest.fixture
async def pool(stream: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(stream)
    yield p
    await p.close()


def worker_env(s: Settings) -> dict[str, str]:
    env = {name.upper(): str(value) for name, value in FAST.items()}
    return env | {
        "NATS_URL": str(s.nats_url),
        "STREAM_NAME": s.stream_name,
        "STREAM_SUBJECT_PREFIX": s.stream_subject_prefix,
    }


async def send_batches(client: httpx.AsyncClient, site: int, n: int, *, offset: int = 0) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=200)
    for i in range(offset, offset + n):
        items = readings(2, start=start + timedelta(hours=i), kg=1.0)
        assert (await post_batch(client, site, batch(items))).status_code == 202


async def read_stream(s: Settings, durable: str = "reader") -> list[Msg]:
    """Everything a durable pull consumer gets from the start of the stream, acked."""
    nc = await nats.connect(str(s.nats_url))
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            f"{s.stream_subject_prefix}.>", durable=durable, stream=s.stream_name
        )
        got: list[Msg] = []
        while True:
            try:
                msgs = await sub.fetch(200, timeout=1.0)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from a partial fetch
                return got
            for m in msgs:
                got.append(m)
                await m.ack()
    finally:
        await nc.close()


async def stream_messages(s: Settings) -> int:
    nc = await nats.connect(str(s.nats_url))
    try:
        info = await nc.jetstream().stream_info(s.stream_name)
        return int(info.state.messages)
    finally:
        await nc.close()


async def applied_events(conn: asyncpg.Connection) -> dict[str, int]:
    """evt_<id> -> site of every processed outbox event."""
    rows = await conn.fetch("SELECT id, site_id FROM outbox WHERE processed_at IS NOT NULL")
    return {f"evt_{r['id']}": r["site_id"] for r in rows}


def assert_exactly_once(msgs: list[Msg], expected: dict[str, int]) -> None:
    ids = [m.headers["Nats-Msg-Id"] for m in msgs if m.headers]
    assert len(ids) == len(msgs)
    assert sorted(ids) == sorted(expected), (len(ids), len(expected))


async def backlog(conn: asyncpg.Connection) -> int:
    n: int = await conn.fetchval("SELECT count(*) FROM stream_relay WHERE relayed_at IS NULL")
    return n


async def drain(conn: asyncpg.Connection) -> None:
    policy = RetryPolicy()
    while (await drain_batch(conn, limit=100, policy=policy, rules=RULES, stream=True)).claimed:
        pass


async def test_every_applied_event_reaches_the_stream_once_with_cloudevents_headers(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, stream: Settings
) -> None:
    site = await make_site(client, limit_kg=2.0)  # 4 kg: threshold alerts beside the batches
    await send_batches(client, site, 2)
    await drain(conn)
    relay = Relay(pool, stream)
    try:
        await relay.drain()
    finally:
        await relay.close()
    expected = await applied_events(conn)
    assert len(expected) == 4  # 2 batches, 80 % and 100 % thresholds
    msgs = await read_stream(stream)
    assert_exactly_once(msgs, expected)
    rows = await conn.fetch(
        "SELECT o.id AS event_id, r.event_type, o.site_id, o.payload,"
        " o.created_at AS event_created_at FROM stream_relay r JOIN outbox o ON o.id = r.event_id"
    )
    by_id = {f"evt_{r['event_id']}": r for r in rows}
    types = set()
    for m in msgs:
        h = m.headers or {}
        row = by_id[h["ce-id"]]
        types.add(h["ce-type"])
        assert m.subject == f"{stream.stream_subject_prefix}.{h['ce-type']}.{site}"
        assert h["ce-specversion"] == "1.0"
        assert h["ce-source"] == "/emissions-engine"
        assert datetime.fromisoformat(h["ce-time"]) == row["event_created_at"]
        assert m.data == message_of(row)  # the webhook body, byte for byte
        assert json.loads(m.data)["id"] == h["Nats-Msg-Id"]
    assert types == {"batch.accepted", "site.threshold_crossed"}
    assert await backlog(conn) == 0


async def test_a_republished_claim_is_kept_once_by_the_msg_id(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, stream: Settings
) -> None:
    """A relay that died after JetStream's acks but before recording them: the next one
    publishes the same events again, and JetStream drops them by their Nats-Msg-Id."""
    site = await make_site(client)
    await send_batches(client, site, 5)
    await drain(conn)
    for _ in range(2):
        relay = Relay(pool, stream)
        try:
            await relay.drain()
        finally:
            await relay.close()
        assert relay.published == 5
        await conn.execute("UPDATE stream_relay SET relayed_at = NULL, available_at = now()")
    assert await stream_messages(stream) == 5
    assert_exactly_once(await read_stream(stream), await applied_events(conn))


async def test_without_nats_url_nothing_is_queued_for_the_stream(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await send_batches(client, site, 2)
    while (await drain_batch(conn, limit=100, policy=RetryPolicy(), rules=RULES)).claimed:
        pass
    assert len(await applied_events(conn)) == 2
    assert await conn.fetchval("SELECT count(*) FROM stream_relay") == 0
    queue = (await client.get("/v1/ops/queue")).json()
    assert (queue["stream_backlog"], queue["stream_backlog_age_s"]) == (0, 0.0)


@pytest.mark.slow
async def test_worker_killed_mid_publish_another_takes_over_nothing_lost_or_doubled(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    stream: Settings,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    """Mid-publish for certain: NATS is paused (SIGSTOP) so worker a's publishes sit in the
    server's socket unacknowledged, a is SIGKILLed holding the lease, NATS resumes and stores
    them; after the lease worker b publishes the same events again and JetStream drops them
    by their Nats-Msg-Id."""
    urls: dict[str, Any] = {"database_url": stream.database_url, "redis_url": stream.redis_url}
    env = worker_env(stream) | {"STREAM_LEASE_S": "8", "STREAM_PUBLISH_TIMEOUT_S": "6"}
    site = await make_site(client)
    leased = (
        "SELECT count(*) FROM stream_relay"
        " WHERE relayed_at IS NULL AND attempts = 1 AND available_at > now() + interval '2 s'"
    )
    async with WorkerProcess(**urls, log_dir=tmp_path, name="a", env=env) as first:
        await send_batches(client, site, 10)
        await wait_for(lambda: _zero(conn), timeout=20, message="first events never relayed")
        nats_server.pause()
        try:
            await send_batches(client, site, 20, offset=10)
            await wait_for(lambda: _fetch(conn, leased), timeout=20, message="never published")
            await first.kill()
        finally:
            nats_server.resume()
    in_flight = await _fetch(conn, leased)
    recorded = await conn.fetchval("SELECT count(*) FROM stream_relay WHERE relayed_at IS NOT NULL")
    # What a published without recording it is in the stream now, beside what it recorded.
    await wait_for(
        lambda: _more_than(stream, recorded), timeout=10, message="a's publishes never landed"
    )
    async with WorkerProcess(**urls, log_dir=tmp_path, name="b", env=env):
        await wait_drained(conn, timeout=30)
        await wait_for(lambda: _zero(conn), timeout=30, message="relay backlog never cleared")
    expected = await applied_events(conn)
    assert len(expected) >= 30  # the batches, and any stale-site alert
    assert await stream_messages(stream) == len(expected)
    assert_exactly_once(await read_stream(stream), expected)
    retried = await conn.fetchval("SELECT count(*) FROM stream_relay WHERE attempts > 1")
    assert retried >= in_flight > 0  # b published a's leased events again: dropped as dupes


async def _fetch(conn: asyncpg.Connection, query: str) -> int:
    n: int = await conn.fetchval(query)
    return n


async def _more_than(s: Settings, n: int) -> bool:
    return await stream_messages(s) > n


@pytest.mark.slow
async def test_nats_down_ingest_and_drain_go_on_backlog_visible_then_exactly_once(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    stream: Settings,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    """NATS stopped for ~12 s (the issue says a minute; the behaviour does not depend on the
    length: the relay retries with capped backoff) and restarted with its store."""
    urls: dict[str, Any] = {"database_url": stream.database_url, "redis_url": stream.redis_url}
    site = await make_site(client)
    async with WorkerProcess(**urls, log_dir=tmp_path, name="w", env=worker_env(stream)):
        await send_batches(client, site, 10)
        await wait_for(lambda: _zero(conn), timeout=20, message="first events never relayed")
        nats_server.stop()
        try:
            loop = asyncio.get_running_loop()
            down_until = loop.time() + 12
            sent = 10
            while loop.time() < down_until:
                await send_batches(client, site, 5, offset=sent)  # ingest goes on
                sent += 5
                await asyncio.sleep(1)
            await wait_drained(conn, timeout=20)  # and so does the drain
            waiting = await backlog(conn)
            assert waiting >= sent - 10
            queue = (await client.get("/v1/ops/queue")).json()
            assert queue["stream_backlog"] == waiting
            assert queue["stream_backlog_age_s"] > 5
            scrape = (await client.get("/metrics")).text
            assert f"emissions_stream_backlog_events {float(waiting)}" in scrape
        finally:
            nats_server.start()
        await wait_for(lambda: _zero(conn), timeout=30, message="backlog never cleared")
        # A quick restart while events flow: nothing lost, nothing doubled.
        await send_batches(client, site, 5, offset=sent)
        nats_server.stop()
        nats_server.start()
        await send_batches(client, site, 5, offset=sent + 5)
        sent += 10
        await wait_drained(conn, timeout=20)
        await wait_for(lambda: _zero(conn), timeout=30, message="backlog never cleared")
    expected = await applied_events(conn)
    assert len(expected) >= sent  # the batches, and any stale-site alert
    assert await stream_messages(stream) == len(expected)
    assert_exactly_once(await read_stream(stream), expected)


@pytest.mark.slow
async def test_a_worker_started_while_nats_is_down_relays_once_it_is_up(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    stream: Settings,
    nats_server: NatsServer,
    tmp_path: Path,
) -> None:
    urls: dict[str, Any] = {"database_url": stream.database_url, "redis_url": stream.redis_url}
    site = await make_site(client)
    nats_server.stop()
    try:
        async with WorkerProcess(**urls, log_dir=tmp_path, name="w", env=worker_env(stream)) as w:
            await send_batches(client, site, 5)
            await wait_drained(conn, timeout=20)
            # Its connect gives up after ~5 s and says so; the drain never waited for it.
            await wait_for(lambda: w.events("relay_round_failed"), timeout=20, message="silent")
            assert await backlog(conn) >= 5
            nats_server.start()
            await wait_for(lambda: _zero(conn), timeout=30, message="backlog never cleared")
    finally:
        nats_server.start()  # no-op when running
    expected = await applied_events(conn)
    assert await stream_messages(stream) == len(expected) >= 5
    assert_exactly_once(await read_stream(stream), expected)


async def _zero(conn: asyncpg.Connection) -> bool:
    return await backlog(conn) == 0 and await conn.fetchval("SELECT count(*) FROM stream_relay") > 0


async def test_cli_replay_publishes_a_time_range_again_dry_run_and_audited(
    client: httpx.AsyncClient, conn: asyncpg.Connection, pool: asyncpg.Pool, stream: Settings
) -> None:
    """Past the duplicate window (0 s here: none), the same events are stored again."""
    site = await make_site(client)
    await send_batches(client, site, 3)
    await drain(conn)
    no_window = Settings.from_env(
        {},
        **{f: getattr(stream, f) for f in stream.__struct_fields__}
        | {"stream_duplicate_window_s": 1, "stream_lease_s": 0.5},
    )
    relay = Relay(pool, no_window)
    try:
        await relay.drain()
        assert await stream_messages(stream) == 3
        await asyncio.sleep(1.5)  # the duplicate window passes
        first = await conn.fetchval("SELECT min(created_at) FROM outbox")
        env = {"DATABASE_URL": stream.database_url, "LOG_JSON": "true"}
        span = ["--from", first.isoformat(), "--to", datetime.now(UTC).isoformat()]
        dry = await run_cli("stream", "replay", *span, "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout.splitlines()[-1])["count"] == 3
        assert await backlog(conn) == 0
        real = await run_cli("stream", "replay", *span, env=env)
        assert real.returncode == 0, real.stderr
        assert await backlog(conn) == 3
        await relay.drain()
    finally:
        await relay.close()
    assert await stream_messages(stream) == 6
    audits = await conn.fetch(
        "SELECT dry_run, affected FROM ops_audit WHERE action = 'stream.replay' ORDER BY id"
    )
    assert [(a["dry_run"], a["affected"]) for a in audits] == [(True, 3), (False, 3)]
    backwards = await run_cli("stream", "replay", "--from", span[3], "--to", span[1], env=env)
    assert backwards.returncode == 2


MARKER = "<!-- stream-consumer-example"
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The ```python block right after the marker in README.md."""
    text = README.read_text()
    after = text[text.index(MARKER) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```\n", start)]


async def test_the_readme_consumer_reads_from_the_start_a_time_and_a_sequence(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    stream: Settings,
    tmp_path: Path,
) -> None:
    script = tmp_path / "consumer.py"
    script.write_text(readme_example())
    site = await make_site(client)
    relay = Relay(pool, stream)
    try:
        await send_batches(client, site, 3)
        await drain(conn)
        await relay.drain()
        await asyncio.sleep(0.05)
        between = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await send_batches(client, site, 2, offset=3)
        await drain(conn)
        await relay.drain()
    finally:
        await relay.close()
    ids = [f"evt_{i}" for i in await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM outbox")]
    assert len(ids) == 5
    env = {"NATS_URL": str(stream.nats_url), "STREAM": stream.stream_name}
    env["SUBJECTS"] = f"{stream.stream_subject_prefix}.>"

    async def consume(durable: str, *args: str) -> list[list[str]]:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script), *args],
            env={**os.environ, **env, "DURABLE": durable},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.splitlines()]

    everything = await consume("from-start")
    assert [line[2] for line in everything] == ids
    assert [int(line[0]) for line in everything] == [1, 2, 3, 4, 5]
    assert {line[1] for line in everything} == {"batch.accepted"}
    assert [line[2] for line in await consume("from-time", "time", between.isoformat())] == ids[3:]
    assert [line[2] for line in await consume("from-seq", "seq", "2")] == ids[1:]
    assert await consume("from-start") == []  # the durable consumer kept its position
