"""Batch ingest: atomic, idempotent at two layers, and honest about duplicates and conflicts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import httpx

from service.ingest import _lock_id
from tests.integration.helpers import (
    batch,
    device_auth,
    device_key,
    make_site,
    post_batch,
    readings,
    table_counts,
)


async def test_batch_is_stored_with_one_outbox_event(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    response = await post_batch(client, site, batch(readings(3)), key="k-1")
    assert response.status_code == 202
    body = response.json()
    assert (body["received"], body["accepted"], body["duplicates"], body["conflicts"]) == (
        3,
        3,
        0,
        [],
    )
    rows = await conn.fetch("SELECT ts, methane_kg, batch_id::text FROM measurements ORDER BY ts")
    assert [r["methane_kg"] for r in rows] == [1.25, 2.25, 3.25]
    assert {r["batch_id"] for r in rows} == {body["batch_id"]}
    events = await conn.fetch("SELECT site_id, event_type, payload FROM outbox")
    assert len(events) == 1
    assert events[0]["site_id"] == site
    payload = await conn.fetchval("SELECT payload::text FROM outbox")
    assert body["batch_id"] in payload
    assert '"accepted": 3' in payload


async def test_same_key_same_body_replays_byte_identical(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    first = await post_batch(client, site, batch(readings(5)), key="same")
    second = await post_batch(client, site, batch(readings(5)), key="same")
    assert first.status_code == second.status_code == 202
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    counts = await table_counts(conn)
    assert (counts["measurements"], counts["outbox"], counts["ingest_requests"]) == (5, 1, 1)


async def test_reordered_retry_with_other_offsets_is_the_same_request(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    items = [
        {"ts": "2026-01-05T00:00:00Z", "methane_kg": 1.0},
        {"ts": "2026-01-05T00:15:00Z", "methane_kg": 2.0},
    ]
    same_meaning = [
        {"ts": "2026-01-05T02:15:00+02:00", "methane_kg": 2.0},
        {"ts": "2026-01-04T19:00:00-05:00", "methane_kg": 1.0},
    ]
    first = await post_batch(client, site, batch(items), key="k")
    second = await post_batch(client, site, batch(same_meaning), key="k")
    assert second.status_code == 202
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"


async def test_same_key_different_body_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch(readings(2)), key="k")
    before = await table_counts(conn)
    response = await post_batch(client, site, batch(readings(3)), key="k")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert await table_counts(conn) == before


async def test_twenty_concurrent_same_key_write_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    body = batch(readings(50))
    responses = await asyncio.gather(
        *(post_batch(client, site, body, key="storm") for _ in range(20))
    )
    statuses = [r.status_code for r in responses]
    assert all(s in (202, 409) for s in statuses), statuses
    originals = [
        r for r in responses if r.status_code == 202 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(originals) == 1
    for r in responses:
        if r.status_code == 202:
            assert r.content == originals[0].content
        else:
            assert r.headers["Retry-After"] == "1"
            assert r.json()["type"] == "/problems/idempotency-key-in-flight"
    counts = await table_counts(conn)
    assert (counts["measurements"], counts["outbox"], counts["ingest_requests"]) == (50, 1, 1)


async def test_twenty_concurrent_same_key_different_bodies_write_one(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    """A key reused with other readings while its first request commits: one body is stored,
    every other request is refused (in flight, or reused) and wrote nothing."""
    site = await make_site(client)
    bodies = [batch(readings(5, start=datetime(2026, 1, 5, i, tzinfo=UTC))) for i in range(20)]
    responses = await asyncio.gather(
        *(post_batch(client, site, body, key="storm") for body in bodies)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 1, statuses
    assert set(statuses) <= {202, 409, 422}, statuses
    for r in responses:
        if r.status_code == 422:
            assert r.json()["type"] == "/problems/idempotency-key-reused"
    winner = bodies[[r.status_code for r in responses].index(202)]
    stored = await conn.fetch("SELECT ts FROM measurements ORDER BY ts")
    assert [r["ts"].isoformat() for r in stored] == [m["ts"] for m in winner["measurements"]]
    counts = await table_counts(conn)
    assert (counts["outbox"], counts["ingest_requests"]) == (1, 1)


async def test_key_in_flight_is_409_with_retry_after(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    # Hold the key's lock the way a first, still-running request does.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(f"{site}/dev-1", "k"))
        response = await post_batch(client, site, batch(readings(2)), key="k")
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert (await table_counts(conn))["measurements"] == 0
    retry = await post_batch(client, site, batch(readings(2)), key="k")
    assert retry.status_code == 202
    assert "Idempotent-Replayed" not in retry.headers


async def test_same_readings_under_new_key_are_duplicates(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch(readings(4)), key="a")
    response = await post_batch(client, site, batch(readings(4)), key="b")
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["conflicts"]) == (0, 4, [])
    counts = await table_counts(conn)
    assert (counts["measurements"], counts["outbox"], counts["ingest_requests"]) == (4, 1, 2)


async def test_same_window_different_value_is_a_conflict_and_keeps_the_stored_value(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch([{"ts": "2026-01-05T00:00:00Z", "methane_kg": 1.5}]))
    response = await post_batch(
        client,
        site,
        batch(
            [
                {"ts": "2026-01-05T00:00:00Z", "methane_kg": 9.75},
                {"ts": "2026-01-05T00:15:00Z", "methane_kg": 2.0},
            ]
        ),
    )
    body = response.json()
    assert body["accepted"] == 1
    assert body["duplicates"] == 0
    assert body["conflicts"] == [
        {"ts": "2026-01-05T00:00:00Z", "stored_methane_kg": 1.5, "received_methane_kg": 9.75}
    ]
    stored = await conn.fetchval(
        "SELECT methane_kg FROM measurements WHERE ts = $1", datetime(2026, 1, 5, tzinfo=UTC)
    )
    assert stored == 1.5
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 2


async def test_batch_with_nothing_new_writes_no_outbox_event(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await post_batch(client, site, batch(readings(2)))
    await post_batch(client, site, batch([{"ts": readings(1)[0]["ts"], "methane_kg": 99.0}]))
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 1


async def test_failure_between_measurements_and_outbox_commits_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await conn.execute(
        """
        CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'forced failure after the measurement insert'; END $$;
        CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox
        FOR EACH ROW EXECUTE FUNCTION fail_outbox();
        """
    )
    await device_key(client, site)  # post_batch's key, made before the snapshot
    before = await table_counts(conn)
    response = await post_batch(client, site, batch(readings(3)), key="k")
    assert response.status_code == 500
    assert response.json()["type"] == "/problems/internal-error"
    assert await table_counts(conn) == before
    # Once the fault is gone, the same key is free: nothing of the failed attempt remains.
    await conn.execute("DROP TRIGGER fail_outbox ON outbox")
    retry = await post_batch(client, site, batch(readings(3)), key="k")
    assert retry.status_code == 202
    assert retry.json()["accepted"] == 3


async def test_failure_writing_the_idempotency_record_commits_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    await conn.execute(
        """
        CREATE FUNCTION fail_key() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'forced failure at the idempotency record'; END $$;
        CREATE TRIGGER fail_key BEFORE INSERT ON ingest_requests
        FOR EACH ROW EXECUTE FUNCTION fail_key();
        """
    )
    await device_key(client, site)  # post_batch's key, made before the snapshot
    before = await table_counts(conn)
    response = await post_batch(client, site, batch(readings(3)), key="k")
    assert response.status_code == 500
    assert await table_counts(conn) == before


async def test_unknown_site_is_404_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    auth = await device_auth(client, site)
    before = await table_counts(conn)
    response = await post_batch(client, 424242, batch(readings(1)), headers=auth)
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/site-not-found"
    assert await table_counts(conn) == before


async def test_reading_in_a_month_without_partition_lands_and_is_found(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    ts = datetime(2001, 3, 4, 5, 0, tzinfo=UTC)
    response = await post_batch(client, site, batch([{"ts": ts.isoformat(), "methane_kg": 4.5}]))
    assert response.json()["accepted"] == 1
    where = await conn.fetchval(
        "SELECT tableoid::regclass::text FROM measurements WHERE ts = $1", ts
    )
    assert where == "measurements_default"
    # Creating that month's partition later moves the row; it is still found, once.
    assert await conn.fetchval("SELECT ensure_measurement_partition('2001-03-01')") is True
    rows = await conn.fetch(
        "SELECT tableoid::regclass::text AS part, methane_kg FROM measurements WHERE ts = $1", ts
    )
    assert [(r["part"], r["methane_kg"]) for r in rows] == [("measurements_2001_03", 4.5)]
    again = await post_batch(client, site, batch([{"ts": ts.isoformat(), "methane_kg": 4.5}]))
    assert again.json()["duplicates"] == 1


async def test_expired_key_is_treated_as_new(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    first = await post_batch(client, site, batch(readings(2)), key="old")
    await conn.execute("UPDATE ingest_requests SET expires_at = now() - interval '1 second'")
    second = await post_batch(client, site, batch(readings(2)), key="old")
    assert second.status_code == 202
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["batch_id"] != first.json()["batch_id"]
    assert second.json()["duplicates"] == 2
    assert await conn.fetchval("SELECT count(*) FROM ingest_requests") == 1


async def test_expired_key_with_new_readings_stores_them_and_replaces_the_answer(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    """An expired answer sends even an all-new batch round the fast path (which only takes
    keys never stored): the careful path stores it and replaces the answer under the key."""
    site = await make_site(client)
    await post_batch(client, site, batch(readings(2)), key="old")
    await conn.execute("UPDATE ingest_requests SET expires_at = now() - interval '1 second'")
    later = readings(3, start=datetime(2026, 1, 6, tzinfo=UTC))
    second = await post_batch(client, site, batch(later), key="old")
    assert second.status_code == 202
    assert "Idempotent-Replayed" not in second.headers
    assert (second.json()["accepted"], second.json()["duplicates"]) == (3, 0)
    stored = await conn.fetchrow(
        "SELECT batch_id::text, expires_at > now() AS live FROM ingest_requests"
    )
    assert stored is not None
    assert (stored["batch_id"], stored["live"]) == (second.json()["batch_id"], True)
    counts = await table_counts(conn)
    assert (counts["measurements"], counts["outbox"], counts["ingest_requests"]) == (5, 2, 1)
    replay = await post_batch(client, site, batch(later), key="old")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == second.content


async def test_request_id_is_echoed_and_stored_in_the_outbox_payload(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    response = await post_batch(
        client, site, batch(readings(1)), headers={"X-Request-ID": "req-abc.123"}
    )
    assert response.headers["X-Request-ID"] == "req-abc.123"
    assert await conn.fetchval("SELECT payload->>'request_id' FROM outbox") == "req-abc.123"
    generated = await client.get("/health")
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_keys_are_scoped_per_device(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    a = await post_batch(client, site, batch(readings(1), device_id="a"), key="k")
    b = await post_batch(client, site, batch(readings(2), device_id="b"), key="k")
    assert a.status_code == b.status_code == 202
    assert "Idempotent-Replayed" not in b.headers
    assert await conn.fetchval("SELECT count(*) FROM ingest_requests") == 2
