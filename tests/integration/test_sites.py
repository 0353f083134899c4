"""Sites over HTTP: create, read, keyset pages, partial change; every rejection is a problem
document and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.helpers import make_site, table_counts

SITE_FIELDS = {
    "id",
    "name",
    "emission_limit_kg",
    "metadata",
    "created_at",
    "updated_at",
    "lifetime_kg",
    "year",
    "year_kg",
    "percent_of_limit",
    "status",
    "reading_count",
    "last_reading_at",
    "freshness_s",
    "lifetime_t_co2e",
    "year_t_co2e",
    "gwp",
    "reporting_interval_s",
    "dead_events",
    "dead_deliveries",
    "projected_year_kg",
    "projected_year_t_co2e",
    "projected_exceedance_at",
    "time_zone",
}


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    """The RFC 9457 shape every error answers with; returns the body for further checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == type_
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def site_row(conn: asyncpg.Connection, site_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT name, emission_limit_kg, metadata::text, created_at, updated_at "
        "FROM sites WHERE id = $1",
        site_id,
    )
    assert row is not None
    return dict(row)


# --------------------------------------------------------------------------- create and read


async def test_create_is_201_with_the_full_site_shape(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/sites",
        json={"name": "Permian North", "emission_limit_kg": 5000, "metadata": {"basin": "P"}},
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == SITE_FIELDS
    assert isinstance(body["id"], int)
    assert body["name"] == "Permian North"
    assert body["emission_limit_kg"] == 5000.0
    assert body["metadata"] == {"basin": "P"}
    assert body["created_at"] == body["updated_at"]
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None
    assert body["year"] == datetime.now(UTC).year
    assert (body["lifetime_kg"], body["year_kg"], body["percent_of_limit"]) == (0, 0, 0)
    assert body["status"] == "ok"
    assert body["reading_count"] == 0
    assert body["last_reading_at"] is None
    assert body["freshness_s"] is None
    counts = await table_counts(conn)
    assert {t: counts[t] for t in ("sites", "measurements", "ingest_requests", "outbox")} == {
        "sites": 1,
        "measurements": 0,
        "ingest_requests": 0,
        "outbox": 0,
    }


async def test_metadata_defaults_to_an_empty_object(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post("/v1/sites", json={"name": "bare", "emission_limit_kg": 1.5})
    assert response.status_code == 201
    assert response.json()["metadata"] == {}
    assert await conn.fetchval("SELECT metadata::text FROM sites") == "{}"


async def test_get_returns_what_create_returned(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = await client.post(
        "/v1/sites", json={"name": "a", "emission_limit_kg": 10, "metadata": {"n": [1, 2]}}
    )
    fetched = await client.get(f"/v1/sites/{created.json()['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created.json()


async def test_create_and_change_are_audited_by_operator_name(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = await client.post("/v1/sites", json={"name": "Pad Z", "emission_limit_kg": 10})
    site_id = created.json()["id"]
    changed = await client.patch(f"/v1/sites/{site_id}", json={"emission_limit_kg": 20})
    assert changed.status_code == 200
    refused = await client.patch(f"/v1/sites/{site_id}", json={"emission_limit_kg": -1})
    assert refused.status_code == 422
    rows = await conn.fetch("SELECT actor, action, params FROM ops_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["params"]) for r in rows] == [
        ("dev", "site.create", {"site_id": site_id}),
        ("dev", "site.update", {"site_id": site_id, "fields": ["emission_limit_kg"]}),
    ]


async def test_duplicate_name_in_another_case_is_409_and_adds_no_row(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    first = await client.post("/v1/sites", json={"name": "Eagle Ford", "emission_limit_kg": 1})
    assert first.status_code == 201
    before = await table_counts(conn)
    response = await client.post("/v1/sites", json={"name": "EAGLE ford", "emission_limit_kg": 2})
    body = assert_problem(response, 409, "/problems/site-name-taken")
    assert "EAGLE ford" in body["detail"]
    assert await table_counts(conn) == before
    assert await conn.fetchval("SELECT name FROM sites") == "Eagle Ford"


async def test_unknown_site_is_404(client: httpx.AsyncClient, conn: asyncpg.Connection) -> None:
    response = await client.get("/v1/sites/424242")
    body = assert_problem(response, 404, "/problems/site-not-found")
    assert body["instance"] == f"urn:request:{response.headers['x-request-id']}"


# --------------------------------------------------------------------------- list


async def test_keyset_pages_cover_every_site_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = [await make_site(client) for _ in range(5)]
    seen: list[int] = []
    sizes: list[int] = []
    cursor = 0
    while True:
        response = await client.get("/v1/sites", params={"after": cursor, "limit": 2})
        assert response.status_code == 200
        page = response.json()
        ids = [item["id"] for item in page["items"]]
        sizes.append(len(ids))
        seen.extend(ids)
        if page["next_after"] is None:
            break
        assert page["next_after"] == ids[-1]
        cursor = page["next_after"]
    assert sizes == [2, 2, 1]
    assert seen == sorted(created)


async def test_first_page_without_a_cursor_starts_at_the_lowest_id(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = [await make_site(client) for _ in range(3)]
    response = await client.get("/v1/sites", params={"limit": 2})
    page = response.json()
    assert [item["id"] for item in page["items"]] == sorted(created)[:2]
    assert page["next_after"] == sorted(created)[1]
    assert set(page["items"][0]) == SITE_FIELDS


async def test_default_page_lists_all_and_has_no_next(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = [await make_site(client) for _ in range(3)]
    page = (await client.get("/v1/sites")).json()
    assert [item["id"] for item in page["items"]] == sorted(created)
    assert page["next_after"] is None


async def test_cursor_past_the_last_site_is_an_empty_last_page(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    page = (await client.get("/v1/sites", params={"after": site})).json()
    assert page == {"items": [], "next_after": None}


async def test_site_added_between_pages_appears_on_a_later_page(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    first = [await make_site(client) for _ in range(2)]
    page1 = (await client.get("/v1/sites", params={"limit": 2})).json()
    late = await make_site(client)
    page2 = (await client.get("/v1/sites", params={"after": page1["next_after"]})).json()
    assert [i["id"] for i in page1["items"]] + [i["id"] for i in page2["items"]] == [
        *first,
        late,
    ]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"after": -1}, {"limit": "ten"}],
    ids=["limit-0", "limit-501", "after-negative", "limit-not-a-number"],
)
async def test_bad_page_parameters_are_422_problems_naming_the_parameter(
    client: httpx.AsyncClient, conn: asyncpg.Connection, params: dict[str, Any]
) -> None:
    await make_site(client)
    before = await table_counts(conn)
    response = await client.get("/v1/sites", params=params)
    body = assert_problem(response, 422, "/problems/validation-error")
    (name,) = params
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", name)]
    assert await table_counts(conn) == before


async def test_page_limit_bounds_are_accepted(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await make_site(client)
    for limit in (1, 500):
        response = await client.get("/v1/sites", params={"limit": limit})
        assert response.status_code == 200
        assert len(response.json()["items"]) == 1


# --------------------------------------------------------------------------- change


async def test_patch_name_changes_only_the_name_and_moves_updated_at(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = (
        await client.post(
            "/v1/sites", json={"name": "old", "emission_limit_kg": 7, "metadata": {"k": 1}}
        )
    ).json()
    response = await client.patch(f"/v1/sites/{created['id']}", json={"name": "new"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "new"
    assert body["emission_limit_kg"] == 7.0
    assert body["metadata"] == {"k": 1}
    assert body["created_at"] == created["created_at"]
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    assert (await client.get(f"/v1/sites/{created['id']}")).json() == body


async def test_patch_limit_changes_only_the_limit(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = (
        await client.post(
            "/v1/sites", json={"name": "s", "emission_limit_kg": 7, "metadata": {"k": 1}}
        )
    ).json()
    body = (
        await client.patch(f"/v1/sites/{created['id']}", json={"emission_limit_kg": 12.5})
    ).json()
    assert (body["name"], body["emission_limit_kg"], body["metadata"]) == ("s", 12.5, {"k": 1})
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )


async def test_patch_metadata_replaces_it_as_a_whole(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = (
        await client.post(
            "/v1/sites", json={"name": "s", "emission_limit_kg": 7, "metadata": {"a": 1, "b": 2}}
        )
    ).json()
    body = (await client.patch(f"/v1/sites/{created['id']}", json={"metadata": {"c": 3}})).json()
    assert (body["name"], body["emission_limit_kg"], body["metadata"]) == ("s", 7.0, {"c": 3})
    emptied = (await client.patch(f"/v1/sites/{created['id']}", json={"metadata": {}})).json()
    assert emptied["metadata"] == {}


async def test_patch_renaming_to_its_own_name_in_another_case_is_allowed(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = (await client.post("/v1/sites", json={"name": "Bakken", "emission_limit_kg": 1})).json()
    response = await client.patch(f"/v1/sites/{site['id']}", json={"name": "BAKKEN"})
    assert response.status_code == 200
    assert response.json()["name"] == "BAKKEN"


async def test_patch_to_another_sites_name_is_409_and_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await client.post("/v1/sites", json={"name": "Taken", "emission_limit_kg": 1})
    other = await make_site(client)
    before = await site_row(conn, other)
    response = await client.patch(f"/v1/sites/{other}", json={"name": "taken"})
    assert_problem(response, 409, "/problems/site-name-taken")
    assert await site_row(conn, other) == before


async def test_patch_unknown_site_is_404_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    await make_site(client)
    before = await table_counts(conn)
    response = await client.patch("/v1/sites/424242", json={"name": "ghost"})
    assert_problem(response, 404, "/problems/site-not-found")
    assert await table_counts(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM sites WHERE name = 'ghost'") == 0


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"colour": "red"}, ""),
        ({"name": ""}, "/name"),
        ({"name": None}, "/name"),
        ({"emission_limit_kg": 0}, "/emission_limit_kg"),
        ({"emission_limit_kg": -1}, "/emission_limit_kg"),
        ({"emission_limit_kg": "9"}, "/emission_limit_kg"),
        ({"metadata": None}, "/metadata"),
        ({"metadata": [1]}, "/metadata"),
    ],
    ids=[
        "unknown-field",
        "empty-name",
        "null-name",
        "zero-limit",
        "negative-limit",
        "string-limit",
        "null-metadata",
        "list-metadata",
    ],
)
async def test_invalid_patch_is_422_with_a_pointer_and_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, body: dict[str, Any], pointer: str
) -> None:
    site = await make_site(client)
    before = await site_row(conn, site)
    response = await client.patch(f"/v1/sites/{site}", json=body)
    problem = assert_problem(response, 422, "/problems/validation-error")
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert all(e["detail"] for e in problem["errors"])
    assert await site_row(conn, site) == before


async def test_patch_unknown_field_names_the_field(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    response = await client.patch(f"/v1/sites/{site}", json={"name": "x", "colour": "red"})
    problem = assert_problem(response, 422, "/problems/validation-error")
    assert "colour" in problem["errors"][0]["detail"]
    assert (await site_row(conn, site))["name"] != "x"


# --------------------------------------------------------------------------- rejected creates


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": "s", "emission_limit_kg": 0}, "/emission_limit_kg"),
        ({"name": "s", "emission_limit_kg": -5}, "/emission_limit_kg"),
        ({"name": "s", "emission_limit_kg": "100"}, "/emission_limit_kg"),
        ({"name": "s", "emission_limit_kg": 1e16}, "/emission_limit_kg"),
        ({"name": "", "emission_limit_kg": 1}, "/name"),
        ({"name": "n" * 201, "emission_limit_kg": 1}, "/name"),
        ({"name": "s", "emission_limit_kg": 1, "metadata": "x"}, "/metadata"),
        ({"name": "s", "emission_limit_kg": 1, "owner": "me"}, ""),
        ({"emission_limit_kg": 1}, ""),
    ],
    ids=[
        "zero-limit",
        "negative-limit",
        "string-limit",
        "limit-too-large",
        "empty-name",
        "long-name",
        "string-metadata",
        "unknown-field",
        "missing-name",
    ],
)
async def test_invalid_create_is_422_with_a_pointer_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, body: dict[str, Any], pointer: str
) -> None:
    before = await table_counts(conn)
    response = await client.post("/v1/sites", json=body)
    problem = assert_problem(response, 422, "/problems/validation-error")
    assert problem["instance"] == f"urn:request:{response.headers['x-request-id']}"
    assert [e["pointer"] for e in problem["errors"]] == [pointer]
    assert await table_counts(conn) == before


async def test_name_of_200_characters_is_accepted(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post("/v1/sites", json={"name": "n" * 200, "emission_limit_kg": 1})
    assert response.status_code == 201


async def test_non_json_content_type_is_415_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    before = await table_counts(conn)
    response = await client.post(
        "/v1/sites",
        content=b'{"name": "s", "emission_limit_kg": 1}',
        headers={"Content-Type": "text/plain"},
    )
    assert_problem(response, 415, "/problems/unsupported-media-type")
    assert await table_counts(conn) == before


async def test_patch_with_non_json_content_type_is_415_and_changes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    before = await site_row(conn, site)
    response = await client.patch(
        f"/v1/sites/{site}", content=b'{"name": "t"}', headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "/problems/unsupported-media-type")
    assert await site_row(conn, site) == before


async def test_json_with_a_charset_parameter_is_accepted(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/sites",
        content=b'{"name": "s", "emission_limit_kg": 1}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "s", "emission_limit_kg": ',
        b"",
        b"not json",
        b'{"name": "s", "emission_limit_kg": 1} trailing',
    ],
    ids=["truncated", "empty", "bare-words", "trailing-garbage"],
)
async def test_malformed_json_is_400_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, raw: bytes
) -> None:
    before = await table_counts(conn)
    response = await client.post(
        "/v1/sites", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "/problems/malformed-json")
    assert await table_counts(conn) == before


# --------------------------------------------------------------------------- known source bugs


async def test_site_id_beyond_bigint_is_404(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.get(f"/v1/sites/{2**63}")
    assert_problem(response, 404, "/problems/site-not-found")


async def test_cursor_beyond_bigint_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.get("/v1/sites", params={"after": 2**63})
    assert_problem(response, 422, "/problems/validation-error")


async def test_nul_character_in_name_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.post("/v1/sites", json={"name": "a\u0000b", "emission_limit_kg": 1})
    assert_problem(response, 422, "/problems/validation-error")


async def test_query_parameter_error_names_the_public_parameter(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    response = await client.get("/v1/sites", params={"limit": 0})
    body = assert_problem(response, 422, "/problems/validation-error")
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", "limit")]
    hourly = await client.get("/v1/sites/1/hourly", params={"from": "yesterday"})
    body = assert_problem(hourly, 422, "/problems/validation-error")
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", "from")]


async def test_totals_come_with_co2e_and_the_factor_used(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    created = (await client.post("/v1/sites", json={"name": "co2e", "emission_limit_kg": 5})).json()
    assert created["gwp"] == {"version": "AR6-fossil", "factor": 29.8}
    assert created["lifetime_t_co2e"] == 0.0
    await conn.execute(
        "INSERT INTO site_totals (site_id, lifetime_kg, year, year_kg, readings) "
        "VALUES ($1, 1000, extract(year FROM now())::int, 500, 3)",
        created["id"],
    )
    view = (await client.get(f"/v1/sites/{created['id']}")).json()
    assert (view["lifetime_t_co2e"], view["year_t_co2e"]) == (29.8, 14.9)


async def test_hourly_takes_only_rfc3339_date_times(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = (await client.post("/v1/sites", json={"name": "rfc", "emission_limit_kg": 5})).json()
    url = f"/v1/sites/{site['id']}/hourly"
    for bad in ("1700000000", "2026-01-01", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z"):
        response = await client.get(url, params={"to": bad})
        body = assert_problem(response, 422, "/problems/validation-error")
        assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", "to")], bad
    ok = await client.get(url, params={"from": "2026-01-01t00:00:00.5+01:00", "to": "2026-01-02Z"})
    assert ok.status_code == 422  # a date is not a date-time, even with a Z
    ok = await client.get(url, params={"from": "2026-01-01t00:00:00.5+01:00"})
    assert ok.json()["from"] == "2025-12-31T23:00:00.500000Z"
    edge = await client.get(url, params={"to": "0001-01-01T00:00:00+23:59"})
    assert edge.status_code == 200, edge.text


async def test_hourly_to_before_from_is_empty_and_over_400_days_is_cut(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = (await client.post("/v1/sites", json={"name": "span", "emission_limit_kg": 5})).json()
    url = f"/v1/sites/{site['id']}/hourly"
    back = await client.get(url, params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00Z"})
    assert back.status_code == 422  # no seconds: not RFC 3339
    back = await client.get(
        url, params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    )
    assert (back.status_code, back.json()["hours"], back.json()["truncated"]) == (200, [], False)
    long = await client.get(
        url, params={"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    )
    assert (long.json()["to"], long.json()["truncated"]) == ("2025-02-04T00:00:00Z", True)
