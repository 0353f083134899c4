"""Problem types are documented for people and programs; a problem names its occurrence."""

from __future__ import annotations

import httpx


async def test_a_problem_type_is_a_page_for_a_browser_and_json_otherwise(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/problems/validation-error", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Request failed validation</h1>" in page.text
    assert page.headers["vary"] == "Accept"
    data = await client.get("/problems/validation-error")
    assert data.headers["content-type"].startswith("application/json")
    assert data.json() == {
        "type": "/problems/validation-error",
        "title": "Request failed validation",
        "status": 422,
    }


async def test_instance_is_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/sites/9", headers={"X-Request-Id": "trace-123"})
    assert response.status_code == 404
    assert response.json()["instance"] == "urn:request:trace-123"
