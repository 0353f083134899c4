"""Every rejected ingest input: its status, its problem type, and nothing written."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.helpers import device_auth, device_key, make_site, post_batch, table_counts

OK_TS = "2026-01-05T00:00:00Z"


def body(measurements: Any, device_id: Any = "dev-1", **extra: Any) -> bytes:
    return json.dumps({"device_id": device_id, "measurements": measurements, **extra}).encode()


def one(ts: Any = OK_TS, kg: Any = 1.0, **extra: Any) -> bytes:
    return body([{"ts": ts, "methane_kg": kg, **extra}])


FUTURE = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

# (id, body bytes, headers, status, problem slug, pointer or None)
CASES: list[tuple[str, bytes, dict[str, str], int, str, str | None]] = [
    ("malformed-json", b'{"device_id": "d", "measurements": [', {}, 400, "malformed-json", None),
    ("not-an-object", b"[]", {}, 422, "validation-error", ""),
    ("empty-body", b"", {}, 400, "malformed-json", None),
    (
        "nan-literal",
        b'{"device_id":"d","measurements":[{"ts":"' + OK_TS.encode() + b'","methane_kg":NaN}]}',
        {},
        400,
        "malformed-json",
        None,
    ),
    (
        "infinity-literal",
        b'{"device_id":"d","measurements":[{"ts":"'
        + OK_TS.encode()
        + b'","methane_kg":Infinity}]}',
        {},
        400,
        "malformed-json",
        None,
    ),
    (
        "overflow-to-infinity",
        one(kg=0).replace(b"0}", b"1e400}"),
        {},
        422,
        "validation-error",
        "/measurements/0/methane_kg",
    ),
    ("negative-kg", one(kg=-0.5), {}, 422, "validation-error", "/measurements/0/methane_kg"),
    ("kg-above-max", one(kg=1e6 + 1), {}, 422, "validation-error", "/measurements/0/methane_kg"),
    ("kg-as-string", one(kg="1.5"), {}, 422, "validation-error", "/measurements/0/methane_kg"),
    ("kg-null", one(kg=None), {}, 422, "validation-error", "/measurements/0/methane_kg"),
    ("naive-ts", one(ts="2026-01-05T00:00:00"), {}, 422, "validation-error", "/measurements/0/ts"),
    ("ts-not-a-date", one(ts="yesterday"), {}, 422, "validation-error", "/measurements/0/ts"),
    ("ts-as-number", one(ts=1767571200), {}, 422, "validation-error", "/measurements/0/ts"),
    ("ts-far-future", one(ts=FUTURE), {}, 422, "validation-error", "/measurements/0/ts"),
    (
        "ts-before-2000",
        one(ts="1999-12-31T23:59:59Z"),
        {},
        422,
        "validation-error",
        "/measurements/0/ts",
    ),
    (
        "repeated-ts",
        body(
            [{"ts": OK_TS, "methane_kg": 1}, {"ts": "2026-01-05T01:00:00+01:00", "methane_kg": 1}]
        ),
        {},
        422,
        "validation-error",
        "/measurements/1/ts",
    ),
    ("empty-batch", body([]), {}, 422, "validation-error", "/measurements"),
    (
        "too-many-readings",
        body(
            [
                {
                    "ts": (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)).isoformat(),
                    "methane_kg": 1,
                }
                for i in range(5001)
            ]
        ),
        {},
        422,
        "validation-error",
        "/measurements",
    ),
    (
        "unknown-top-field",
        body([{"ts": OK_TS, "methane_kg": 1}], site="x"),
        {},
        422,
        "validation-error",
        "",
    ),
    ("unknown-reading-field", one(unit="kg"), {}, 422, "validation-error", "/measurements/0"),
    (
        "missing-measurements",
        json.dumps({"device_id": "dev-1"}).encode(),
        {},
        422,
        "validation-error",
        "",
    ),
    (
        "device-wrong-type",
        body([{"ts": OK_TS, "methane_kg": 1}], device_id=7),
        {},
        422,
        "validation-error",
        "/device_id",
    ),
    (
        "device-bad-chars",
        body([{"ts": OK_TS, "methane_kg": 1}], device_id="dev\n1"),
        {},
        422,
        "validation-error",
        "/device_id",
    ),
    ("measurements-not-list", body({"ts": OK_TS}), {}, 422, "validation-error", "/measurements"),
    (
        "wrong-content-type",
        one(),
        {"Content-Type": "text/plain"},
        415,
        "unsupported-media-type",
        None,
    ),
    (
        "form-content-type",
        one(),
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported-media-type",
        None,
    ),
    ("missing-key", one(), {"Idempotency-Key": ""}, 400, "idempotency-key-invalid", None),
    ("key-too-long", one(), {"Idempotency-Key": "k" * 256}, 400, "idempotency-key-invalid", None),
    (
        "oversized-body",
        b'{"device_id":"d","measurements":[' + b" " * (1024 * 1024) + b"]}",
        {},
        413,
        "body-too-large",
        None,
    ),
]


@pytest.mark.parametrize(
    ("data", "headers", "status", "slug", "pointer"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_bad_ingest_input_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    data: bytes,
    headers: dict[str, str],
    status: int,
    slug: str,
    pointer: str | None,
) -> None:
    site = await make_site(client)
    sent = {
        "Content-Type": "application/json",
        "Idempotency-Key": "bad-1",
        **(await device_auth(client, site)),
        **headers,
    }
    before = await table_counts(conn)
    response = await client.post(f"/v1/sites/{site}/measurements", content=data, headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    if pointer is not None:
        assert pointer in [e["pointer"] for e in problem["errors"]], problem
    assert await table_counts(conn) == before


async def test_missing_idempotency_key_header_is_400(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    auth = await device_auth(client, site)
    before = await table_counts(conn)
    response = await client.post(
        f"/v1/sites/{site}/measurements",
        content=one(),
        headers={"Content-Type": "application/json", **auth},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/idempotency-key-missing"
    assert await table_counts(conn) == before


async def test_several_broken_readings_are_all_reported(
    client: httpx.AsyncClient, conn: asyncpg.Connection
) -> None:
    site = await make_site(client)
    data = body(
        [
            {"ts": OK_TS, "methane_kg": 1},
            {"ts": "1990-01-01T00:00:00Z", "methane_kg": 1},
            {"ts": "2026-01-05T00:15:00Z", "methane_kg": 2e6},
        ]
    )
    response = await client.post(
        f"/v1/sites/{site}/measurements",
        content=data,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": "k",
            **(await device_auth(client, site)),
        },
    )
    assert response.status_code == 422
    pointers = [e["pointer"] for e in response.json()["errors"]]
    assert pointers == ["/measurements/1/ts", "/measurements/2/methane_kg"]


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("GET", "/no/such/route", 404, "not-found"),
        ("DELETE", "/v1/sites", 405, "method-not-allowed"),
        ("GET", "/v1/sites/not-a-number", 404, "not-found"),
        ("POST", "/v1/sites/1/measurements/extra", 404, "not-found"),
    ],
)
async def test_framework_errors_are_problems_too(
    client: httpx.AsyncClient, method: str, path: str, status: int, slug: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}"


async def test_every_problem_type_is_documented(client: httpx.AsyncClient) -> None:
    index = (await client.get("/problems")).json()
    for entry in index:
        page = await client.get(entry["type"])
        assert page.status_code == 200
        assert page.json()["status"] == entry["status"]


@pytest.mark.parametrize(
    "value", ["a b", 'x"><script>', "a\tb", "é-accent", "r" * 129, "id;drop table sites"]
)
async def test_unsafe_request_ids_are_replaced_not_echoed(
    client: httpx.AsyncClient, conn: asyncpg.Connection, value: str
) -> None:
    site = await make_site(client)
    response = await post_batch(
        client,
        site,
        body_dict(),
        headers={"X-Request-ID": value.encode()},  # type: ignore[dict-item]
    )
    assert response.status_code == 202
    echoed = response.headers["X-Request-ID"]
    assert echoed != value
    assert len(echoed) == 32 and all(c in "0123456789abcdef" for c in echoed)
    assert await conn.fetchval("SELECT payload->>'request_id' FROM outbox") == echoed


@pytest.mark.parametrize("key", ["k\tey", "é-accent"])
async def test_idempotency_keys_with_control_or_non_ascii_characters_are_400(
    client: httpx.AsyncClient, conn: asyncpg.Connection, key: str
) -> None:
    site = await make_site(client)
    await device_key(client, site)  # post_batch's key, made before the snapshot
    before = await table_counts(conn)
    response = await post_batch(
        client,
        site,
        body_dict(),
        headers={"Idempotency-Key": key.encode()},  # type: ignore[dict-item]
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/idempotency-key-invalid"
    assert await table_counts(conn) == before


async def test_crlf_in_headers_never_reaches_a_response(
    client: httpx.AsyncClient, api: Any
) -> None:
    """A raw request smuggling CRLF into X-Request-ID: the server must not echo a header."""
    site = await make_site(client)
    auth = (await device_auth(client, site))["Authorization"]
    payload = one()
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        (
            f"POST /v1/sites/{site}/measurements HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {auth}\r\nIdempotency-Key: crlf-1\r\n"
            "Content-Type: application/json\r\n"
            "X-Request-ID: abc\r\nSet-Cookie: injected=1\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode()
        + payload
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"set-cookie" not in head
    assert b"x-request-id: abc\r\n" in head + b"\r\n"


def body_dict() -> dict[str, Any]:
    return {"device_id": "dev-1", "measurements": [{"ts": OK_TS, "methane_kg": 1.0}]}


@pytest.mark.parametrize("raw", [b"line\x7fdel", b"\x01ctl"])
async def test_a_header_the_http_parser_refuses_is_400_and_writes_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, raw: bytes
) -> None:
    """DEL (0x7f) in a header value never reaches the app: the server's parser answers 400."""
    site = await make_site(client)
    await device_key(client, site)  # post_batch's key, made before the snapshot
    before = await table_counts(conn)
    response = await post_batch(
        client,
        site,
        body_dict(),
        headers={"Idempotency-Key": raw},  # type: ignore[dict-item]
    )
    assert response.status_code == 400
    assert await table_counts(conn) == before
