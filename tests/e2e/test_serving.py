"""How the API serves the dashboard: `/` and `/static/…` only, outside the OpenAPI schema, and
API paths keep answering problem+json (no catch-all route swallows them)."""

from __future__ import annotations

import httpx
import pytest


async def test_root_serves_the_dashboard_page(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "no-cache" in page.headers["cache-control"]
    assert '<main id="main"' in page.text
    script = await http.get("/static/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    licence = await http.get("/static/vendor/uPlot.LICENSE")
    assert licence.status_code == 200 and "MIT License" in licence.text


@pytest.mark.parametrize("path", ["/no/such/route", "/static/no-such-file.js", "/v1/nope"])
async def test_unknown_paths_are_problem_json_404s(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_dashboard_is_not_in_the_openapi_schema(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/schema/openapi.json")).json()["paths"]
    assert paths  # the API itself is documented
    assert not [p for p in paths if p == "/" or p.startswith("/static")]
