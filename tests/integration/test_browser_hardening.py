"""What a browser is told (issue 13 item 5): every response forbids other origins, inline
script, framing, sniffing and referrers; the API reference loads nothing from elsewhere; a
404 never shows a filesystem path; hosts outside ALLOWED_HOSTS are refused."""

from __future__ import annotations

import re

import httpx
import pytest

from service.infra.settings import Settings
from tests.conftest import RunningApi

PATHS = [
    "/",
    "/static/js/app.js",
    "/static/style.css",
    "/schema",
    "/schema/openapi.json",
    "/v1/sites",
    "/v1/ops/queue",
    "/health",
    "/ready",
    "/metrics",
    "/problems",
    "/nope",
    "/static/nope.js",
]


@pytest.mark.parametrize("path", PATHS)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-type"].count("charset") <= 1


async def test_also_on_errors_from_the_edge(client: httpx.AsyncClient) -> None:
    big = b"x" * (2 * 1024 * 1024)
    too_big = await client.post(
        "/v1/sites", content=big, headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413
    assert too_big.headers["x-content-type-options"] == "nosniff"


async def test_the_api_reference_loads_nothing_from_another_origin_and_has_no_inline_script(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/schema", "/schema/docs", "/"):
        page = await client.get(path)
        assert page.status_code == 200, path
        html = page.text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # no inline script
        assert "<style" not in html, path
        assert " style=" not in html, path
    reference = (await client.get("/schema")).text
    assert "ingestMeasurements" in reference  # every operation is there
    assert "Idempotency-Key" in reference
    assert (await client.get("/static/docs.css")).status_code == 200


async def test_the_dashboard_page_is_html_with_one_charset(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    "path", ["/static/js", "/static/nope.js", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/vendor"]
)
async def test_not_found_never_shows_a_filesystem_path(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "/" not in detail and "api" not in detail and "static" not in detail, detail


async def test_hosts_outside_allowed_hosts_are_refused(settings: Settings) -> None:
    only = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        allowed_hosts="api.example.test, 127.0.0.1",
    )
    async with RunningApi(only) as api, httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.get("/health")).status_code == 200  # Host: 127.0.0.1:port
        named = await client.get("/health", headers={"Host": "api.example.test"})
        assert named.status_code == 200
        other = await client.get("/v1/sites", headers={"Host": "evil.example.test"})
        assert other.status_code == 400
        assert other.headers["content-type"] == "application/problem+json"
        assert other.json()["type"] == "/problems/host-not-allowed"
        assert other.headers["x-content-type-options"] == "nosniff"
    wildcard = Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        allowed_hosts="*.example.test,localhost",
    )
    async with RunningApi(wildcard) as api, httpx.AsyncClient(base_url=api.url) as client:
        for host, status in [
            ("api.example.test", 200),
            ("a.b.example.test:8443", 200),
            ("example.test", 400),
            ("evilexample.test", 400),
            ("localhost:8000", 200),
            ("127.0.0.1", 400),
        ]:
            response = await client.get("/health", headers={"Host": host})
            assert response.status_code == status, host
