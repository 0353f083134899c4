"""Inputs found by trying the API as an attacker would (issue 13): each was a 500 or slipped
through; each is now a 422 problem that writes nothing, or is stored in its one meaning."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from domain.sites import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, metadata_errors, name_errors
from tests.integration.helpers import batch, make_site, post_batch, table_counts

JSON = {"Content-Type": "application/json"}


def _nested(depth: int) -> str:
    return '{"x":' * depth + "1" + "}" * depth


def assert_422(response: httpx.Response, pointer: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "/problems/validation-error"
    assert pointer in [e["pointer"] for e in body["errors"]], body
    return body


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 1000, 100_000])
async def test_deeply_nested_metadata_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection, depth: int
) -> None:
    before = await table_counts(conn)
    body = f'{{"name": "deep", "emission_limit_kg": 1, "metadata": {_nested(depth)}}}'
    response = await client.post("/v1/sites", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/validation-error"
    assert await table_counts(conn) == before


async def test_metadata_at_the_depth_limit_is_kept(client: httpx.AsyncClient) -> None:
    # The metadata object is level 1; MAX_METADATA_DEPTH - 1 more objects inside it.
    body = (
        f'{{"name": "ok", "emission_limit_kg": 1, "metadata": {_nested(MAX_METADATA_DEPTH - 1)}}}'
    )
    response = await client.post("/v1/sites", content=body, headers=JSON)
    assert response.status_code == 201, response.text


async def test_metadata_over_16_kib_is_422_on_create_and_on_change(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    big = {"notes": "x" * MAX_METADATA_BYTES}
    before = await table_counts(conn)
    created = await client.post(
        "/v1/sites", json={"name": "big", "emission_limit_kg": 1, "metadata": big}
    )
    assert "at most 16384" in assert_422(created, "/metadata")["errors"][0]["detail"]
    assert await table_counts(conn) == before
    site = await make_site(client)
    changed = await client.patch(f"/v1/sites/{site}", json={"metadata": big})
    assert_422(changed, "/metadata")
    assert await conn.fetchval("SELECT metadata FROM sites WHERE id = $1", site) == {}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Pad\x01A", "control"),  # (NUL is refused earlier, for any string: bad-inputs.md)
        ("Pad\nA", "control"),
        ("Pad\x85A", "control"),
        ("Pad \u202eA\u202c", "bidirectional"),
        ("\u2066Pad\u2069", "bidirectional"),
        ("   ", "blank"),
        ("\t", "control"),
        ("\u3000", "blank"),  # ideographic space
    ],
)
async def test_site_names_with_controls_bidi_overrides_or_only_space_are_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection, name: str, why: str
) -> None:
    before = await table_counts(conn)
    created = await client.post("/v1/sites", json={"name": name, "emission_limit_kg": 1})
    assert why in assert_422(created, "/name")["errors"][0]["detail"]
    site = await make_site(client)
    renamed = await client.patch(f"/v1/sites/{site}", json={"name": name})
    assert_422(renamed, "/name")
    assert await conn.fetchval("SELECT count(*) FROM sites") == before["sites"] + 1


async def test_names_in_any_script_are_fine(client: httpx.AsyncClient) -> None:
    for name in ("Ölfeld Süd", "حقل الغاز ٣", "天然气站 7", "Pad 7 – east"):
        response = await client.post("/v1/sites", json={"name": name, "emission_limit_kg": 1})
        assert response.status_code == 201, (name, response.text)


@pytest.mark.parametrize("site_id", [2**63, 10**30, 0, -1])
async def test_outbox_replay_with_a_site_id_no_bigint_can_hold_is_422(
    client: httpx.AsyncClient, conn: asyncpg.Connection, site_id: int
) -> None:
    response = await client.post("/v1/ops/outbox/replay", json={"site_id": site_id})
    assert_422(response, "/site_id")
    assert await conn.fetchval("SELECT count(*) FROM ops_audit") == 0


async def test_minus_zero_kg_is_stored_as_zero_and_is_the_same_reading(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    ts = "2026-01-05T10:00:00Z"
    negative = batch([{"ts": ts, "methane_kg": -0.0}])
    first = await post_batch(client, site, negative, key="minus-zero")
    assert first.status_code == 202, first.text
    stored = await conn.fetchval(
        "SELECT methane_kg::text FROM measurements WHERE site_id = $1", site
    )
    assert stored == "0"
    again = await post_batch(client, site, batch([{"ts": ts, "methane_kg": 0.0}]), key="plus-zero")
    assert again.json()["duplicates"] == 1
    assert again.json()["conflicts"] == []
    # The same key with +0.0 is the same request, not a reuse with another body.
    retried = await post_batch(
        client, site, batch([{"ts": ts, "methane_kg": 0.0}]), key="minus-zero"
    )
    assert retried.headers.get("idempotent-replayed") == "true"


def test_the_rules_themselves() -> None:
    assert name_errors("Permian Pad 7") == []
    assert metadata_errors({"basin": "Permian", "wells": [1, 2, {"depth_m": 3000}]}) == []
    assert metadata_errors({"a": [[[[]]]]}) == []
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(MAX_METADATA_DEPTH):
        node["x"] = {}
        node = node["x"]
    assert metadata_errors(deep)[0].pointer == "/metadata"
