"""ASGI wrapper: a request id for every request (echoed back), one log line, HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)

from api import http_metrics
from api.problems import OVERLOADED, PROBLEM_JSON
from service.infra import metrics

REQUEST_ID_HEADER = b"x-request-id"
# Honour a caller's id only when it is short and plain: it ends up in logs and payloads.
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("api")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_ID.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


# Always answered, however busy: orchestrators and scrapers must see the process.
_NEVER_SHED = ("/health", "/ready", "/metrics")


class RequestContext:
    """Wraps the whole app (so 404s and 405s are logged too), not one route's middleware.

    Sheds load: with `max_in_flight` requests already being handled, a new one gets 503 +
    Retry-After at once (problem+json) rather than waiting in a queue that only grows.
    """

    def __init__(self, app: ASGIApp, *, max_in_flight: int = 128) -> None:
        self.app = app
        self.max_in_flight = max_in_flight

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
        if http_metrics.in_flight() >= self.max_in_flight and not scope["path"].startswith(
            _NEVER_SHED
        ):
            await _overloaded(scope, send, request_id)
            log.warning(
                "request",
                method=scope.get("method"),
                path=scope["path"],
                status=503,
                problem=OVERLOADED.slug,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
            return
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


async def _overloaded(scope: Scope, send: Send, request_id: str) -> None:
    body = msgspec.json.encode(
        {
            "type": OVERLOADED.uri,
            "title": OVERLOADED.title,
            "status": 503,
            "detail": "Too many requests are being handled; nothing was done. Retry shortly.",
            "instance": scope["path"],
        }
    )
    metrics.PROBLEMS.labels(OVERLOADED.slug).inc()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(OVERLOADED.retry_after_s).encode()),
        (REQUEST_ID_HEADER, request_id.encode("ascii")),
    ]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 503,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
