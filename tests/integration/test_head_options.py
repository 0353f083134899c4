"""HEAD is served wherever GET is (its status and content type, no body), and OPTIONS answers
an Allow header that lists GET, HEAD and OPTIONS, for every GET path of the live OpenAPI
document."""

from __future__ import annotations

import re

import httpx


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_get_path_answers_head_like_get_and_options_with_allow(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    paths = [_concrete(path) for path, item in schema["paths"].items() if "get" in item]
    assert len(paths) >= 15
    for path in paths:
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
        options = await client.options(path)
        assert options.status_code in (200, 204), path
        allowed = {m.strip() for m in options.headers["allow"].split(",")}
        assert {"GET", "HEAD", "OPTIONS"} <= allowed, (path, allowed)


async def test_head_of_a_post_only_path_is_405_listing_what_is_allowed(
    client: httpx.AsyncClient,
) -> None:
    response = await client.head("/v1/alerts/1/ack")
    assert response.status_code == 405
    assert "HEAD" not in response.headers["allow"]
