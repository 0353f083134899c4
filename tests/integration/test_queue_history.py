"""Queue history: one sample per bucket whatever the number of workers, counters of the interval
before it (from the tables, so never counted twice), downsampling, retention, and the workers
with what each is doing, through the real API on a real database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from service import maintenance, queue_history
from service.drain import RetryPolicy, drain_batch
from service.infra import db
from service.workers import WorkerState, beat_forever, working_on

EVERY_S = 10
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def early_in_a_bucket(conn: asyncpg.Connection) -> datetime:
    """The current bucket's start, with at least 4 s of it left (the test fits in them)."""
    while True:
        row = await conn.fetchrow(
            "SELECT date_bin('10 s', clock_timestamp(), 'epoch') AS b,"
            " mod(extract(epoch FROM clock_timestamp()), 10)::float8 AS into"
        )
        assert row is not None
        if row["into"] < 6:
            start: datetime = row["b"]
            return start
        await asyncio.sleep(10 - row["into"] + 0.05)


async def add_event(conn: asyncpg.Connection, **columns: object) -> int:
    names = ["event_type", "site_id", "payload", *columns]
    values = ["measurements.accepted", 1, json.dumps({}), *columns.values()]
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    query = f"INSERT INTO outbox ({', '.join(names)}) VALUES ({marks}) RETURNING id"
    event_id: int = await conn.fetchval(query, *values)
    return event_id


async def add_sample(conn: asyncpg.Connection, at: datetime, **values: float) -> None:
    row = {
        "pending": 0,
        "backoff": 0,
        "dead": 0,
        "oldest_pending_s": 0.0,
        "processed": 0,
        "failed": 0,
        "deliveries_sent": 0,
        "deliveries_failed": 0,
        "deliveries_dead": 0,
        **values,
    }
    marks = ", ".join(f"${i}" for i in range(3, len(row) + 3))
    await conn.execute(
        f"INSERT INTO queue_samples (at, interval_s, {', '.join(row)}) VALUES ($1, $2, {marks})",
        at,
        EVERY_S,
        *row.values(),
    )


async def test_several_samplers_write_one_sample_per_bucket(db_url: str) -> None:
    conns = [await db.connect(db_url) for _ in range(4)]
    try:
        await early_in_a_bucket(conns[0])
        taken = await asyncio.gather(*(queue_history.sample(c, every_s=EVERY_S) for c in conns))
        assert len([t for t in taken if t is not None]) == 1, taken
        again = await queue_history.sample(conns[0], every_s=EVERY_S)
        assert again is None  # the bucket is taken: a later sampler in it writes nothing
        assert await conns[0].fetchval("SELECT count(*) FROM queue_samples") == 1
    finally:
        for c in conns:
            await c.close()


async def test_a_failed_attempt_is_what_the_sampler_counts(conn: asyncpg.Connection) -> None:
    """`failed` counts outbox_errors rows: one per failed attempt, written by the drain."""
    bogus = await add_event(conn)
    await conn.execute("UPDATE outbox SET event_type = 'no.such.type' WHERE id = $1", bogus)
    processed = await add_event(conn, processed_at=datetime.now(UTC))
    report = await drain_batch(conn, limit=10, policy=RetryPolicy(max_attempts=5))
    assert report.failed == 1
    stamped = await conn.fetch("SELECT event_id, at FROM outbox_errors ORDER BY id")
    assert [r["event_id"] for r in stamped] == [bogus] and stamped[0]["at"] is not None
    assert processed not in [r["event_id"] for r in stamped]
    # Gone with its event (retention deletes events; the errors cascade).
    await conn.execute("DELETE FROM outbox WHERE id = $1", bogus)
    assert await conn.fetchval("SELECT count(*) FROM outbox_errors") == 0


async def test_a_sample_has_the_gauges_now_and_the_counts_of_the_interval_before(
    conn: asyncpg.Connection,
) -> None:
    b = await early_in_a_bucket(conn)
    s = timedelta(seconds=1)
    # Gauges: 2 pending, 1 in backoff, 1 dead; processed events are none of them.
    await add_event(conn, created_at=b - 100 * s)
    await add_event(conn)
    await add_event(conn, available_at=b + 3600 * s, attempts=1)
    await add_event(conn, dead_at=b - 5 * s, attempts=10)
    # Counters over [b - 10 s, b): two processed in it, one before it, one after its end.
    for at in (b - 3 * s, b - 10 * s, b - 11 * s, b):
        await add_event(conn, processed_at=at)
    # Failed attempts in it: two, of one event (one before it does not count).
    failing = await add_event(conn, processed_at=b - 60 * s)
    for attempt, at in enumerate((b - 20 * s, b - 9 * s, b - 1 * s), start=1):
        await conn.execute(
            "INSERT INTO outbox_errors (event_id, attempt, at, worker, error)"
            " VALUES ($1, $2, $3, 'w', 'boom')",
            failing,
            attempt,
            at,
        )
    sub = await conn.fetchval(
        "INSERT INTO webhook_subscriptions (url, event_types, secret, created_by)"
        " VALUES ('https://example.test/h', '{site.stale}', 's', 't') RETURNING id"
    )
    rows = [
        # delivered_at, last_attempt_at, last_error, dead_at
        (b - 2 * s, b - 2 * s, None, None),  # sent in it
        (b - 30 * s, b - 30 * s, None, None),  # sent before it
        (None, b - 4 * s, "503", None),  # failed in it
        (None, b - 4 * s, None, None),  # in flight: no error yet
        (None, b - 7 * s, "timeout", b - 7 * s),  # failed and dead-lettered in it
        (None, b - 40 * s, "timeout", b - 40 * s),  # dead before it
    ]
    for event_id, (delivered, attempted, error, dead) in enumerate(rows, start=1):
        await conn.execute(
            "INSERT INTO deliveries (subscription_id, event_id, event_type, delivered_at,"
            " last_attempt_at, last_error, dead_at) VALUES ($1, $2, 'site.stale', $3, $4, $5, $6)",
            sub,
            event_id,
            delivered,
            attempted,
            error,
            dead,
        )
    assert await queue_history.sample(conn, every_s=EVERY_S) == b
    row = await conn.fetchrow("SELECT * FROM queue_samples")
    assert row is not None
    got = dict(row)
    oldest = got.pop("oldest_pending_s")
    assert got == {
        "at": b,
        "interval_s": 10,
        "pending": 2,
        "backoff": 1,
        "dead": 1,
        "processed": 2,
        "failed": 2,
        "deliveries_sent": 1,
        "deliveries_failed": 2,
        "deliveries_dead": 1,
    }
    assert 100 <= oldest < 110  # the oldest live event, dead ones aside


async def test_history_is_downsampled_max_of_gauges_sum_of_counters(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    # Six samples in the first minute, two in the third (the second has none: a gap).
    for i, (pending, processed) in enumerate([(5, 1), (9, 2), (3, 3), (0, 4), (7, 5), (2, 6)]):
        await add_sample(conn, T0 + timedelta(seconds=10 * i), pending=pending, processed=processed)
    await add_sample(conn, T0 + timedelta(seconds=120), pending=1, failed=3, dead=2)
    await add_sample(conn, T0 + timedelta(seconds=170), pending=4, failed=1, dead=1)
    window = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:03:00Z"}
    body = (await client.get("/v1/ops/queue/history", params={**window, "step": 60})).json()
    assert (body["from"], body["to"], body["step_s"]) == (
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:03:00Z",
        60,
    )
    assert body["sample_s"] == 10 and body["truncated"] is False
    points = [
        (
            p["at"],
            p["samples"],
            p["covered_s"],
            p["pending"],
            p["processed"],
            p["failed"],
            p["dead"],
        )
        for p in body["points"]
    ]
    assert points == [
        ("2026-01-01T00:00:00Z", 6, 60, 9, 21, 0, 0),
        ("2026-01-01T00:02:00Z", 2, 20, 4, 0, 4, 2),
    ]
    # Every sample by itself at step 10; buckets are aligned to `from`.
    raw = (await client.get("/v1/ops/queue/history", params={**window, "step": 10})).json()
    assert [p["pending"] for p in raw["points"]] == [5, 9, 3, 0, 7, 2, 1, 4]
    shifted: dict[str, str | int] = {
        "from": "2026-01-01T00:00:30Z",
        "to": "2026-01-01T00:03:00Z",
        "step": 60,
    }
    body = (await client.get("/v1/ops/queue/history", params=shifted)).json()
    assert [(p["at"], p["processed"]) for p in body["points"]] == [
        ("2026-01-01T00:00:30Z", 15),
        ("2026-01-01T00:01:30Z", 0),
        ("2026-01-01T00:02:30Z", 0),
    ]
    # Without a step: one that gives at most 400 points (an hour: every 10 s).
    hour = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}
    assert (await client.get("/v1/ops/queue/history", params=hour)).json()["step_s"] == 10
    week = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z"}
    assert (await client.get("/v1/ops/queue/history", params=week)).json()["step_s"] == 1800


async def test_a_backwards_range_is_empty_and_a_long_one_is_truncated(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await add_sample(conn, T0, pending=3)
    await add_sample(conn, T0 + timedelta(hours=5), pending=4)
    backwards = {"from": "2026-01-01T01:00:00Z", "to": "2026-01-01T00:00:00Z"}
    body = (await client.get("/v1/ops/queue/history", params=backwards)).json()
    assert body["points"] == [] and body["truncated"] is False
    # 1500 points of 10 s is 4 h 10 min: the answer stops there; continue from its `to`.
    long: dict[str, str | int] = {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-01-02T00:00:00Z",
        "step": 10,
    }
    body = (await client.get("/v1/ops/queue/history", params=long)).json()
    assert body["truncated"] is True and body["to"] == "2026-01-01T04:10:00Z"
    assert [p["pending"] for p in body["points"]] == [3]
    rest = {**long, "from": body["to"]}
    body = (await client.get("/v1/ops/queue/history", params=rest)).json()
    assert [p["pending"] for p in body["points"]] == [4]


async def test_bad_from_to_and_step_are_422_problems(client: httpx.AsyncClient) -> None:
    for params, pointers in (
        ({"from": "2026-01-01T00:00:00"}, ["query:from"]),
        ({"to": "yesterday"}, ["query:to"]),
        ({"from": "1767225600", "to": "x"}, ["query:from", "query:to"]),
        ({"step": "5"}, ["query:step"]),
        ({"step": "86401"}, ["query:step"]),
        ({"step": "ten"}, ["query:step"]),
    ):
        answer = await client.get("/v1/ops/queue/history", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert [f"{e['in']}:{e['name']}" for e in answer.json()["errors"]] == pointers
    for limit in ("0", "501"):
        answer = await client.get("/v1/ops/workers", params={"limit": limit})
        assert answer.status_code == 422
        assert [f"{e['in']}:{e['name']}" for e in answer.json()["errors"]] == ["query:limit"]


async def test_retention_deletes_old_samples_and_workers_gone_for_as_long(
    conn: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    for days in (20, 15, 13, 0):
        await add_sample(conn, now - timedelta(days=days))
        await conn.execute(
            "INSERT INTO workers (worker_id, hostname, pid, seen_at) VALUES ($1, 'h', 1, $2)",
            f"w{days}",
            now - timedelta(days=days),
        )
    report = await maintenance.apply_retention(conn, outbox_days=7, history_days=14, batch=1)
    assert (report.samples_deleted, report.workers_deleted) == (2, 2)
    left = await conn.fetchval(
        "SELECT count(*) FROM queue_samples WHERE at > now() - '14 d'::interval"
    )
    assert left == 2 == await conn.fetchval("SELECT count(*) FROM queue_samples")
    workers = [r["worker_id"] for r in await conn.fetch("SELECT worker_id FROM workers ORDER BY 1")]
    assert workers == ["w0", "w13"]


async def test_workers_show_their_heartbeat_claim_and_whether_they_are_stale(
    client: httpx.AsyncClient, conn: asyncpg.Connection, db_url: str
) -> None:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    state = WorkerState(drained=42)
    beat = asyncio.create_task(beat_forever(pool, state, every_s=0.05))
    try:
        with working_on(state, "drain (sweep)"):
            for _ in range(100):
                claim = await conn.fetchval(
                    "SELECT claim FROM workers WHERE worker_id = $1", state.worker_id
                )
                if claim:
                    break
                await asyncio.sleep(0.05)
            body = (await client.get("/v1/ops/workers")).json()
        for _ in range(100):  # idle again: the next beat clears it
            if not await conn.fetchval(
                "SELECT claim FROM workers WHERE worker_id = $1", state.worker_id
            ):
                break
            await asyncio.sleep(0.05)
        idle = (await client.get("/v1/ops/workers")).json()
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        await pool.close()
    await conn.execute(
        "INSERT INTO workers (worker_id, hostname, pid, seen_at, drained) VALUES"
        " ('old:1:a', 'old-host', 1, now() - interval '1 minute', 7),"
        " ('gone:2:b', 'gone-host', 2, now() - interval '2 days', 9)"
    )
    later = (await client.get("/v1/ops/workers")).json()

    (me,) = body["items"]
    host, pid, _ = state.worker_id.split(":")
    assert (me["worker_id"], me["host"], me["pid"]) == (state.worker_id, host, int(pid))
    assert (me["drained"], me["claim"], me["alive"]) == (42, "drain (sweep)", True)
    assert me["claim_since"] is not None and me["heartbeat_age_s"] < 5
    assert body["stale_after_s"] == 10 and body["truncated"] is False
    assert (idle["items"][0]["claim"], idle["items"][0]["claim_since"]) == (None, None)
    # A worker silent for a minute is listed as stale; one gone for two days is not listed.
    assert [(w["host"], w["alive"]) for w in later["items"]] == [(host, True), ("old-host", False)]
    one = (await client.get("/v1/ops/workers", params={"limit": 1})).json()
    assert len(one["items"]) == 1 and one["truncated"] is True
