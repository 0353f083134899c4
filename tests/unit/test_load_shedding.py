"""The request wrapper sheds load: beyond max_in_flight, 503 problem+json with Retry-After at
once (the app is not called); only liveness (/health) is always answered: readiness and
metrics read Postgres, so they are shed like every other route."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import msgspec
from litestar.types import HTTPRequestEvent, Message, Scope

from api.context import RequestContext


class Held:
    """An ASGI app that answers 200 only when released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: RequestContext, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> HTTPRequestEvent:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(cast(dict[str, Any], message))

    # Only the keys the wrapper reads, not a whole HTTPScope.
    scope = cast(Scope, {"type": "http", "method": "POST", "path": path, "headers": []})
    await app(scope, receive, send)
    return sent


async def test_requests_beyond_the_limit_get_503_at_once_and_health_always_answers() -> None:
    held = Held()
    app = RequestContext(held, max_in_flight=2)
    busy = [asyncio.create_task(call(app, "/v1/sites/1/measurements")) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert held.calls == 2

    shed = await asyncio.wait_for(call(app, "/v1/sites/1/measurements"), timeout=1)
    start, body = shed
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1"
    problem = msgspec.json.decode(body["body"])
    assert (problem["type"], problem["status"]) == ("/problems/overloaded", 503)
    assert held.calls == 2  # the app never saw it

    health = asyncio.create_task(call(app, "/health"))
    await asyncio.sleep(0.01)
    assert held.calls == 3  # passed through although the limit is reached
    held.release.set()
    for task in [*busy, health]:
        start, _ = await task
        assert start["status"] == 200
    for path in ("/ready", "/metrics"):
        held.release.clear()
        busy = [asyncio.create_task(call(app, "/v1/sites/1/measurements")) for _ in range(2)]
        await asyncio.sleep(0.01)
        shed_path = await asyncio.wait_for(call(app, path), timeout=1)
        assert shed_path[0]["status"] == 503, path
        held.release.set()
        for task in busy:
            await task
    again = await call(app, "/v1/sites/1/measurements")  # room again
    assert again[0]["status"] == 200
