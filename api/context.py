"""ASGI wrapper: a request id for every request (echoed back), one log line, HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api import http_metrics

REQUEST_ID_HEADER = b"x-request-id"
# Honour a caller's id only when it is short and plain: it ends up in logs and payloads.
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("api")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_ID.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


class RequestContext:
    """Wraps the whole app (so 404s and 405s are logged too), not one route's middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        http_metrics.started(scope)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            http_metrics.finished(scope, status, seconds)
            log.info(
                "request",
                method=scope.get("method"),
                path=scope["path"],
                status=status,
                latency_ms=round(seconds * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
