"""Ingest's fast lane (service/ingest.py, FastLane): requests that wait for a statement share
the next one, each member judged as if alone, and a group that fails as a whole leaves no
trace and runs its members alone.

A group is made certain here: the lane has one statement, held by a first request whose
window another transaction holds uncommitted (its insert waits). Requests sent meanwhile wait
together; the other transaction commits, and the next statement takes them all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from domain.readings import Window
from service import ingest
from service.infra import db, metrics
from service.infra.errors import KeyInFlight, KeyReused
from service.infra.settings import Settings

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
HELD = datetime(2026, 1, 4, 0, 0, tzinfo=UTC)  # the window the blocking transaction holds


@pytest.fixture
async def lane_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(
        settings, min_size=1, max_size=2, server_settings=db.INGEST_POOL_SETTINGS
    )
    yield pool
    await pool.close()


async def _site(conn: asyncpg.Connection, name: str = "lane") -> int:
    site: int = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ($1, 1e9) RETURNING id", name
    )
    return site


def _batch(site: int, key: str, *readings: Window, device: str = "dev-1") -> ingest.Submission:
    return ingest.submit(
        site_id=site,
        device_id=device,
        key=key,
        readings=list(readings),
        request_id=f"req-{key}",
        retention=timedelta(days=1),
    )


def _w(minutes: int, kg: float = 1.0) -> Window:
    return Window(ts=T0 + timedelta(minutes=minutes), methane_kg=kg)


async def _grouped(
    db_url: str,
    lane: ingest.FastLane,
    site: int,
    batches: list[ingest.Submission],
    cancel: frozenset[int] = frozenset(),
) -> list[ingest.Outcome | BaseException | None]:
    """Each batch through the lane, all of them waiting together for its one statement; the
    requests at the indexes in `cancel` give up while they wait."""
    other = await db.connect(db_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id) "
            "VALUES ($1, $2, 1.0, 'dev-0', gen_random_uuid())",
            site,
            HELD,
        )
        first = asyncio.create_task(
            lane.record(_batch(site, "holder", Window(ts=HELD, methane_kg=1.0)))
        )
        await asyncio.sleep(0.3)
        assert not first.done(), "the first request's insert should wait on the held window"
        tasks = [asyncio.create_task(lane.record(b)) for b in batches]
        await asyncio.sleep(0.1)
        assert len(lane._waiting) == len(batches), "every request should wait for the statement"
        for i in cancel:
            tasks[i].cancel()  # its deadline, say
        await asyncio.sleep(0.05)
        assert len(lane._waiting) == len(batches) - len(cancel)
        await tx.commit()
        assert await asyncio.wait_for(first, 10) is None  # its window was taken: careful path
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    finally:
        await other.close()


def _groups_observed() -> float:
    return sum(
        s.value
        for m in metrics.INGEST_GROUP.collect()
        for s in m.samples
        if s.name.endswith("_count")
    )


async def test_waiting_requests_share_one_transaction_each_judged_alone(
    db_url: str, conn: asyncpg.Connection, lane_pool: asyncpg.Pool
) -> None:
    site = await _site(conn)
    # Stored before: a key to replay, a key to reuse with another body, a window to overlap.
    replay = _batch(site, "replay", _w(300, 5.0))
    reused = _batch(site, "reused", _w(315, 6.0))
    for earlier in (replay, reused):
        assert await ingest._record_fast(conn, earlier) is not None
    await ingest._record_fast(conn, _batch(site, "stored", _w(330, 7.0)))

    lane = ingest.FastLane(lane_pool, statements=1, group_readings=2000)
    groups_before = _groups_observed()
    new_a = _batch(site, "a", _w(0), _w(15, 2.0))
    new_b = _batch(site, "b", _w(60, 3.0), device="dev-2")
    overlapping = _batch(site, "c", _w(330, 7.0), _w(345))  # one window stored: careful path
    reused_other_body = _batch(site, "reused", _w(315, 9.0))
    outcomes = await _grouped(
        db_url, lane, site, [new_a, replay, new_b, overlapping, reused_other_body]
    )
    assert _groups_observed() == groups_before + 1  # one statement took all five

    a, replayed, b, careful, refused = outcomes
    assert isinstance(a, ingest.Outcome) and isinstance(b, ingest.Outcome)
    assert (a.replayed, a.receipt.accepted if a.receipt else None) == (False, 2)
    assert (b.replayed, b.receipt.accepted if b.receipt else None) == (False, 1)
    assert isinstance(replayed, ingest.Outcome) and replayed.replayed
    assert careful is None  # wrote nothing: the caller takes the careful path
    assert isinstance(refused, KeyReused)

    # The two new members committed in one transaction, each with its answer and its event.
    rows = await conn.fetch(
        "SELECT key, xmin::text AS tx, batch_id FROM ingest_requests WHERE key IN ('a', 'b')"
    )
    assert len(rows) == 2 and rows[0]["tx"] == rows[1]["tx"]
    events = {
        r["payload"]["request_id"]: r
        for r in await conn.fetch("SELECT id, payload FROM outbox ORDER BY id")
    }
    assert a.event_id == events["req-a"]["id"] and b.event_id == events["req-b"]["id"]
    assert "req-c" not in events and "req-holder" not in events
    payload = events["req-a"]["payload"]
    assert payload["accepted"] == 2 and payload["device_id"] == "dev-1"
    assert payload["first_ts"] == "2026-01-05T10:00:00+00:00"
    assert payload["last_ts"] == "2026-01-05T10:15:00+00:00"
    assert payload["hours"] == ["2026-01-05T10:00:00+00:00"]
    assert events["req-b"]["payload"]["device_id"] == "dev-2"
    by_key = {r["key"]: str(r["batch_id"]) for r in rows}
    assert payload["batch_id"] == by_key["a"]
    # The stored answer is the one the request got; the readings are each member's own.
    body = await conn.fetchval("SELECT response_body FROM ingest_requests WHERE key = 'a'")
    assert body == a.body
    stored = await conn.fetch(
        "SELECT ts, methane_kg, device_id FROM measurements WHERE ts >= $1 AND ts < $2 ORDER BY ts",
        T0,
        T0 + timedelta(hours=2),
    )
    assert [(r["ts"], r["methane_kg"], r["device_id"]) for r in stored] == [
        (T0, 1.0, "dev-1"),
        (T0 + timedelta(minutes=15), 2.0, "dev-1"),
        (T0 + timedelta(minutes=60), 3.0, "dev-2"),
    ]
    assert (
        await conn.fetchval(
            "SELECT methane_kg FROM measurements WHERE ts = $1", T0 + timedelta(minutes=315)
        )
        == 6.0
    )  # the refused body changed nothing
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM measurements WHERE ts = $1", T0 + timedelta(minutes=345)
        )
        == 0
    )  # nor did the member sent to the careful path


async def test_a_group_that_fails_as_a_whole_runs_each_member_alone(
    db_url: str, conn: asyncpg.Connection, lane_pool: asyncpg.Pool
) -> None:
    """Two members with one window (other keys, other values) and two with one key and one
    body: the group's statement meets unique_violation and writes nothing; alone, each pair
    resolves as two requests in turn would."""
    site = await _site(conn)
    lane = ingest.FastLane(lane_pool, statements=1, group_readings=2000)
    first = _batch(site, "x1", _w(0, 1.0))
    rival = _batch(site, "x2", _w(0, 4.0))
    twice = _batch(site, "same", _w(120, 2.0))
    again = _batch(site, "same", _w(120, 2.0))
    groups_before = _groups_observed()
    outcomes = await _grouped(db_url, lane, site, [first, rival, twice, again])
    assert _groups_observed() == groups_before  # the group statement committed nothing
    assert not any(isinstance(o, BaseException) for o in outcomes[:2]), outcomes
    window = [o for o in outcomes[:2] if isinstance(o, ingest.Outcome)]
    assert len(window) == 1 and not window[0].replayed  # one stored the window; the other
    assert outcomes[:2].count(None) == 1  # goes to the careful path (a conflict there)
    # Alone, at once, the key's second request either finds the first's answer or meets its
    # lock (409, retry), as two requests with one key always may.
    stored = [o for o in outcomes[2:] if isinstance(o, ingest.Outcome) and not o.replayed]
    assert len(stored) == 1, outcomes
    second = outcomes[3] if outcomes[2] is stored[0] else outcomes[2]
    if isinstance(second, ingest.Outcome):
        assert second.replayed and second.body == stored[0].body
    else:
        assert isinstance(second, KeyInFlight), second
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM ingest_requests WHERE key IN ('x1', 'x2', 'same')"
        )
        == 2
    )
    assert await conn.fetchval("SELECT count(*) FROM measurements WHERE site_id = $1", site) == 3


async def test_a_request_that_gives_up_while_waiting_is_never_written(
    db_url: str, conn: asyncpg.Connection, lane_pool: asyncpg.Pool
) -> None:
    site = await _site(conn)
    lane = ingest.FastLane(lane_pool, statements=1, group_readings=2000)
    kept = _batch(site, "kept", _w(0))
    gone = _batch(site, "gone", _w(15))
    outcome, cancelled = await _grouped(db_url, lane, site, [kept, gone], cancel=frozenset({1}))
    assert isinstance(cancelled, asyncio.CancelledError)
    assert isinstance(outcome, ingest.Outcome) and not outcome.replayed
    keys = await conn.fetch("SELECT key FROM ingest_requests ORDER BY key")
    assert [r["key"] for r in keys] == ["kept"]


async def test_a_group_is_cut_at_its_readings_budget(
    db_url: str, conn: asyncpg.Connection, lane_pool: asyncpg.Pool
) -> None:
    """Waiting requests beyond the budget wait for the next statement (and still commit)."""
    site = await _site(conn)
    lane = ingest.FastLane(lane_pool, statements=1, group_readings=4)
    batches = [
        _batch(site, f"k{i}", _w(60 * i), _w(60 * i + 15), _w(60 * i + 30)) for i in range(3)
    ]
    groups_before = _groups_observed()
    outcomes = await _grouped(db_url, lane, site, batches)
    assert all(isinstance(o, ingest.Outcome) and not o.replayed for o in outcomes), outcomes
    # 3 readings each, 4 a statement: no two fit together; each ran on the one-batch statement.
    assert _groups_observed() == groups_before
    assert await conn.fetchval("SELECT count(*) FROM measurements WHERE site_id = $1", site) == 10
