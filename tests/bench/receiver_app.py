"""A minimal ASGI webhook receiver for the delivery benchmark: answers POSTs by RECEIVER_MODE
(ok: 204, fail: 500, hang: after 60 s) and counts them; GET returns the counts as JSON."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

MODE = os.environ.get("RECEIVER_MODE", "ok")
seen: set[bytes] = set()
counts = {"requests": 0}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        body = json.dumps({"requests": counts["requests"], "unique": len(seen)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    counts["requests"] += 1
    if MODE == "hang":
        await asyncio.sleep(60)
    status = 500 if MODE == "fail" else 204
    if status == 204:
        seen.update(v for k, v in scope["headers"] if k == b"webhook-id")
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
