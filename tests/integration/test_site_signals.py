"""What a site manager sees at a glance: dead events and deliveries per site, the year-end
projection, the site's time zone; and the ETag that lets the dashboard poll the list cheaply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from domain.projection import project_year
from service.drain import RetryPolicy, drain_batch
from tests.integration.helpers import batch, make_site, post_batch


async def drain(conn: asyncpg.Connection) -> None:
    while (await drain_batch(conn, limit=100, policy=RetryPolicy())).claimed:
        pass


def _listed(body: dict[str, object], site_id: int) -> dict[str, object]:
    items = body["items"]
    assert isinstance(items, list)
    return next(s for s in items if s["id"] == site_id)


async def test_second_list_with_the_etag_is_304_and_new_totals_are_200_with_a_new_etag(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site_id = await make_site(client)
    first = await client.get("/v1/sites?limit=500")
    etag = first.headers["etag"]
    assert first.status_code == 200
    assert etag.startswith('W/"')

    again = await client.get("/v1/sites?limit=500", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    reading = {"ts": (now - timedelta(hours=1)).isoformat(), "methane_kg": 7.5}
    assert (await post_batch(client, site_id, batch([reading]))).status_code in (200, 201, 202)
    await drain(conn)
    changed = await client.get("/v1/sites?limit=500", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert _listed(changed.json(), site_id)["lifetime_kg"] == 7.5


async def test_site_detail_has_an_etag_too(client: httpx.AsyncClient) -> None:
    site_id = await make_site(client)
    first = await client.get(f"/v1/sites/{site_id}")
    again = await client.get(
        f"/v1/sites/{site_id}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    await client.patch(f"/v1/sites/{site_id}", json={"emission_limit_kg": 123})
    changed = await client.get(
        f"/v1/sites/{site_id}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert changed.status_code == 200
    assert changed.json()["emission_limit_kg"] == 123


async def test_projection_is_the_year_to_date_at_its_average_pace(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site_id = await make_site(client, limit_kg=1000.0)
    year = datetime.now(UTC).year
    await conn.execute(
        "INSERT INTO site_totals (site_id, lifetime_kg, year, year_kg, readings, last_reading_at)"
        " VALUES ($1, 40, $2, 40, 4, now())",
        site_id,
        year,
    )
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    body = (await client.get(f"/v1/sites/{site_id}")).json()
    after = datetime.now(UTC).replace(second=0, microsecond=0)
    options = {
        project_year(40.0, 1000.0, at).year_end_kg for at in (before, after)
    }  # the API takes the minute of the request
    assert body["projected_year_kg"] in options
    elapsed = (before - datetime(year, 1, 1, tzinfo=UTC)) / (
        datetime(year + 1, 1, 1, tzinfo=UTC) - datetime(year, 1, 1, tzinfo=UTC)
    )
    assert abs(body["projected_year_kg"] - 40.0 / elapsed) < 0.01 * 40.0 / elapsed
    assert abs(body["projected_year_t_co2e"] - body["projected_year_kg"] * 29.8 / 1000) < 1e-3
    # 40 kg so far projects far below 1000 kg this year (unless the year has just begun).
    if elapsed > 0.05:
        assert body["projected_exceedance_at"] is None

    # Between the even pace and the limit: the limit is reached before the year ends.
    year_kg = 1000 * (1 + elapsed) / 2
    await conn.execute("UPDATE site_totals SET year_kg = $2 WHERE site_id = $1", site_id, year_kg)
    start = datetime(year, 1, 1, tzinfo=UTC)
    body = (await client.get(f"/v1/sites/{site_id}")).json()
    at = datetime.fromisoformat(body["projected_exceedance_at"])
    reach = start + (before - start) * (1000 / year_kg)
    assert abs((at - reach).total_seconds()) <= 120
    assert before < at < datetime(year + 1, 1, 1, tzinfo=UTC)

    # Exceeded already: no date to predict.
    await conn.execute("UPDATE site_totals SET year_kg = 1200 WHERE site_id = $1", site_id)
    body = (await client.get(f"/v1/sites/{site_id}")).json()
    assert body["projected_exceedance_at"] is None
    assert body["projected_year_kg"] > 1200


async def test_dead_events_and_dead_deliveries_are_counted_per_site(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site_id = await make_site(client)
    other = await make_site(client)
    sub = await conn.fetchval(
        "INSERT INTO webhook_subscriptions (url, event_types, secret, created_by)"
        " VALUES ('https://example.org/hook', '{x}', 's', 't') RETURNING id"
    )
    events = [
        await conn.fetchval(
            "INSERT INTO outbox (event_type, site_id, payload, dead_at, processed_at)"
            " VALUES ('x', $1, '{}', $2, $3) RETURNING id",
            site,
            dead,
            processed,
        )
        for site, dead, processed in [
            (site_id, datetime.now(UTC), None),
            (site_id, datetime.now(UTC), None),
            (site_id, None, datetime.now(UTC)),
            (other, None, datetime.now(UTC)),
        ]
    ]
    for event, dead, delivered in [
        (events[2], datetime.now(UTC), None),  # dead delivery of site_id's event
        (events[0], None, datetime.now(UTC)),  # delivered: not counted
        (events[3], None, None),  # owed, live: not counted
    ]:
        await conn.execute(
            "INSERT INTO deliveries (subscription_id, event_id, event_type, dead_at, delivered_at)"
            " VALUES ($1, $2, 'x', $3, $4)",
            sub,
            event,
            dead,
            delivered,
        )
    one = (await client.get(f"/v1/sites/{site_id}")).json()
    assert (one["dead_events"], one["dead_deliveries"]) == (2, 1)
    listed = (await client.get("/v1/sites?limit=500")).json()
    assert (
        _listed(listed, site_id)["dead_events"],
        _listed(listed, site_id)["dead_deliveries"],
    ) == (2, 1)
    assert (_listed(listed, other)["dead_events"], _listed(listed, other)["dead_deliveries"]) == (
        0,
        0,
    )


async def test_a_valid_iana_zone_in_metadata_is_the_sites_time_zone(
    client: httpx.AsyncClient,
) -> None:
    made = await client.post(
        "/v1/sites",
        json={
            "name": "Zoned",
            "emission_limit_kg": 10,
            "metadata": {"timezone": "America/Chicago"},
        },
    )
    assert made.json()["time_zone"] == "America/Chicago"
    bad = await client.post(
        "/v1/sites",
        json={"name": "Unzoned", "emission_limit_kg": 10, "metadata": {"tz": "Mars/Olympus"}},
    )
    assert bad.json()["time_zone"] is None
