"""The replay bodies document their exclusive modes as oneOf (inside allOf): every documented
example is valid against the schema and accepted by the server, two modes at once are neither."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

REPLAYS = {"/v1/ops/outbox/replay": "event_ids", "/v1/ops/deliveries/replay": "delivery_ids"}


def _body(document: dict[str, Any], path: str) -> dict[str, Any]:
    body: dict[str, Any] = document["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]
    return body


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if not ref.startswith("#/components/schemas/"):
        return schema
    found: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


@pytest.mark.parametrize("path", sorted(REPLAYS))
async def test_every_example_validates_and_is_accepted_and_two_modes_are_not(
    client: httpx.AsyncClient, path: str
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    media = _body(document, path)
    validator = Draft202012Validator({**media["schema"], "components": document["components"]})
    assert len(_resolved(document, media["schema"])["allOf"][0]["oneOf"]) == 3
    assert len(media["examples"]) >= 3
    for name, example in media["examples"].items():
        assert not list(validator.iter_errors(example["value"])), name
        response = await client.post(path, json={**example["value"], "dry_run": True})
        assert response.status_code == 200, (name, response.text)
    both = {REPLAYS[path]: [1], "all_dead": True}
    assert list(validator.iter_errors(both))
    assert (await client.post(path, json=both)).status_code == 422


async def test_an_outbox_replay_with_to_before_from_selects_nothing(
    client: httpx.AsyncClient,
) -> None:
    body = {"site_id": 1, "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    response = await client.post("/v1/ops/outbox/replay", json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["event_ids"], response.json()["replayed"]) == ([], 0)
