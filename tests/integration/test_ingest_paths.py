"""Ingest's fast path (plain inserts) and careful path (per-window checks) give the same answers,
including when a concurrent transaction stores one of the batch's windows mid-flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from domain.fingerprint import canonical, canonical_fingerprint
from domain.readings import Window
from service import ingest
from service.infra import db
from service.infra.errors import KeyReused

X = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
Y = datetime(2026, 1, 5, 11, 30, tzinfo=UTC)


async def _site(conn: asyncpg.Connection) -> int:
    site: int = await conn.fetchval(
        "INSERT INTO sites (name, emission_limit_kg) VALUES ('paths', 1e9) RETURNING id"
    )
    return site


async def _record(conn: asyncpg.Connection, site: int, key: str, *readings: Window) -> object:
    return await ingest.record_batch(
        conn,
        ingest.submit(
            site_id=site,
            device_id="dev-1",
            key=key,
            readings=list(readings),
            request_id="r",
            retention=timedelta(days=1),
        ),
    )


@pytest.mark.parametrize(("stored", "duplicates", "conflicts"), [(1.5, 1, 0), (9.75, 0, 1)])
async def test_window_a_concurrent_transaction_stores_is_reported_not_failed(
    db_url: str, conn: asyncpg.Connection, stored: float, duplicates: int, conflicts: int
) -> None:
    site = await _site(conn)
    other = await db.connect(db_url)
    mine = await db.connect(db_url)
    try:
        # Another transaction holds window X, uncommitted: the batch's overlap check cannot
        # see it, so the fast path's plain insert waits on it, then meets unique_violation.
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO measurements (site_id, ts, methane_kg, device_id, batch_id) "
            "VALUES ($1, $2, $3, 'dev-0', gen_random_uuid())",
            site,
            X,
            stored,
        )
        task = asyncio.create_task(
            _record(mine, site, "k", Window(ts=X, methane_kg=1.5), Window(ts=Y, methane_kg=2.0))
        )
        await asyncio.sleep(0.3)
        assert not task.done(), "the insert should wait for the other transaction"
        await tx.commit()
        outcome = await asyncio.wait_for(task, timeout=10)
    finally:
        await other.close()
        await mine.close()
    receipt = outcome.receipt  # type: ignore[attr-defined]
    assert (receipt.accepted, receipt.duplicates, len(receipt.conflicts)) == (
        1,
        duplicates,
        conflicts,
    )
    rows = await conn.fetch("SELECT ts, methane_kg FROM measurements ORDER BY ts")
    assert [(r["ts"], r["methane_kg"]) for r in rows] == [(X, stored), (Y, 2.0)]
    events = await conn.fetch("SELECT payload FROM outbox")
    assert len(events) == 1
    payload = events[0]["payload"]
    assert payload["accepted"] == 1
    assert payload["hours"] == ["2026-01-05T11:00:00+00:00"]
    assert await conn.fetchval("SELECT count(*) FROM ingest_requests") == 1


async def test_fast_and_careful_paths_write_the_same_event_payload(
    conn: asyncpg.Connection,
) -> None:
    site = await _site(conn)
    first = [Window(ts=X + timedelta(minutes=15 * i), methane_kg=1.0 + i) for i in range(8)]
    await _record(conn, site, "fast", *first)  # nothing stored in its span: fast path
    later = [Window(ts=Y + timedelta(hours=2, minutes=15 * i), methane_kg=3.0) for i in range(8)]
    await _record(conn, site, "careful", first[0], *later)  # one stored window: careful path
    fast, careful = [
        r["payload"] for r in await conn.fetch("SELECT payload FROM outbox ORDER BY id")
    ]
    assert (fast["accepted"], careful["accepted"]) == (8, 8)
    assert fast["first_ts"] == "2026-01-05T10:00:00+00:00"
    assert fast["last_ts"] == "2026-01-05T11:45:00+00:00"
    assert fast["hours"] == ["2026-01-05T10:00:00+00:00", "2026-01-05T11:00:00+00:00"]
    assert careful["first_ts"] == "2026-01-05T13:30:00+00:00"
    assert careful["last_ts"] == "2026-01-05T15:15:00+00:00"
    assert careful["hours"] == [
        "2026-01-05T13:00:00+00:00",
        "2026-01-05T14:00:00+00:00",
        "2026-01-05T15:00:00+00:00",
    ]
    assert set(fast) == set(careful)


async def test_fast_path_writes_nothing_when_its_key_committed_unseen(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """The fast path's statement takes its snapshot before the key's lock: a first request
    under the same key may commit in between. Made certain here with a snapshot taken before
    that commit: the statement must fail on the answer's unique key (not store a second body
    under the key), and record_batch then refuses the reused key."""
    site = await _site(conn)
    stale = await db.connect(db_url)
    try:
        tx = stale.transaction(isolation="repeatable_read")
        await tx.start()
        await stale.fetchval("SELECT 1")  # the snapshot, before the first request commits
        await _record(conn, site, "k", Window(ts=X, methane_kg=1.5))
        other = [Window(ts=Y, methane_kg=2.0)]
        ordered = canonical(other)
        submission = ingest.Submission(
            site_id=site,
            device_id="dev-1",
            scope=f"{site}/dev-1",
            key="k",
            ordered=ordered,
            fingerprint=canonical_fingerprint("dev-1", ordered),
            request_id="r",
            retention=timedelta(days=1),
            key_id=None,
        )
        with pytest.raises(ingest._Overlap) as raised:
            await ingest._record_fast(stale, submission)
        assert isinstance(raised.value.__cause__, asyncpg.UniqueViolationError)
        assert raised.value.__cause__.constraint_name == "ingest_requests_pkey"
        await tx.rollback()
    finally:
        await stale.close()
    with pytest.raises(KeyReused):
        await _record(conn, site, "k", *other)
    stored = await conn.fetch("SELECT ts FROM measurements")
    assert [r["ts"] for r in stored] == [X]
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def test_event_hours_are_the_utc_hours_of_the_readings_whatever_their_offsets(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """The event's hours (what the drain recomputes) are UTC hour boundaries on both paths,
    for readings sent with half-hour offsets and a session in another time zone."""
    site = await _site(conn)
    india = timezone(timedelta(hours=5, minutes=30))
    newfoundland = timezone(-timedelta(hours=3, minutes=30))
    first = [
        Window(ts=datetime(2026, 1, 5, 10, 15, tzinfo=india), methane_kg=1.0),  # 04:45Z
        Window(ts=datetime(2026, 1, 5, 10, 45, tzinfo=india), methane_kg=1.0),  # 05:15Z
        Window(ts=datetime(2026, 1, 4, 23, 50, tzinfo=newfoundland), methane_kg=1.0),  # 03:20Z
    ]
    later = Window(ts=datetime(2026, 1, 5, 11, 40, tzinfo=india), methane_kg=1.0)  # 06:10Z
    other = await db.connect(db_url)
    try:
        await other.execute("SET timezone = 'Asia/Kolkata'")
        await _record(other, site, "fast", *first)
        await _record(other, site, "careful", first[0], later)  # one stored window
    finally:
        await other.close()
    fast, careful = [
        [datetime.fromisoformat(h) for h in r["payload"]["hours"]]
        for r in await conn.fetch("SELECT payload FROM outbox ORDER BY id")
    ]

    def hour(h: int) -> datetime:
        return datetime(2026, 1, 5, h, tzinfo=UTC)

    assert fast == [hour(3), hour(4), hour(5)]
    assert careful == [hour(6)]
