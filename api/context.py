"""ASGI wrapper: a request id for every request (echoed back), one log line, HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
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

from api import http_metrics, staleness
from api.problems import (
    HEADERS_TOO_LARGE,
    HOST_NOT_ALLOWED,
    OVERLOADED,
    PROBLEM_JSON,
    ProblemType,
    occurrence,
)
from service.infra import metrics

REQUEST_ID_HEADER = b"x-request-id"
# On every response: nothing from another origin, no inline script, never in a frame, no
# content sniffing, no referrer to anyone. The dashboard and /schema need nothing more.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        b" form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# Honour a caller's id only when it is short and plain: it ends up in logs and payloads.
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
log = structlog.get_logger("api")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SAFE_ID.match(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


# Always answered, however busy: an orchestrator must see the process is alive. (/ready and
# /metrics read Postgres, so they are shed like everything else.)
_NEVER_SHED = "/health"


class RequestContext:
    """Wraps the whole app (so 404s and 405s are logged too), not one route's middleware.

    Sheds load: with `max_in_flight` requests already being handled, a new one gets 503 +
    Retry-After at once (problem+json) rather than waiting in a queue that only grows.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int = 128,
        allowed_hosts: Sequence[str] = ("*",),
        max_headers: int = 64,
        max_header_bytes: int = 16 * 1024,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.hosts = _host_pattern(allowed_hosts)
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

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
        refusal = None
        headers = list(scope.get("headers", ()))
        if len(headers) > self.max_headers or (
            sum(len(n) + len(v) for n, v in headers) > self.max_header_bytes
        ):
            refusal = (
                HEADERS_TOO_LARGE,
                _HEADERS_DETAIL.format(self.max_headers, self.max_header_bytes),
            )
        elif self.hosts is not None and not self.hosts.fullmatch(_host(scope)):
            refusal = (HOST_NOT_ALLOWED, "This host name is not served here (ALLOWED_HOSTS).")
        elif http_metrics.in_flight() >= self.max_in_flight and scope["path"] != _NEVER_SHED:
            refusal = (OVERLOADED, _OVERLOADED_DETAIL)
        if refusal is not None:
            await _refuse(scope, send, request_id, *refusal)
            seconds = time.perf_counter() - started
            http_metrics.refused(scope, refusal[0].status, seconds)
            log.warning(
                "request",
                method=scope.get("method"),
                path=scope["path"],
                status=refusal[0].status,
                problem=refusal[0].slug,
                latency_ms=round(seconds * 1000, 2),
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
                headers.extend(SECURITY_HEADERS)
                if (lag := staleness.header(scope["state"])) is not None:
                    headers.append(lag)
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


_HEADERS_DETAIL = "At most {} request headers of {} bytes in all; nothing was done."
_OVERLOADED_DETAIL = "Too many requests are being handled; nothing was done. Retry shortly."


def _host_pattern(allowed: Sequence[str]) -> re.Pattern[str] | None:
    """The allowed host names ("*.example.com" for any subdomain); None when any host is."""
    if "*" in allowed:
        return None
    names = [
        rf"[^.]+(\.[^.]+)*\.{re.escape(h[2:])}" if h.startswith("*.") else re.escape(h)
        for h in allowed
    ]
    return re.compile("|".join(names), re.IGNORECASE)


def _host(scope: Scope) -> str:
    """The Host header's name without its port ("" when there is none)."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return ""


async def _refuse(
    scope: Scope, send: Send, request_id: str, kind: ProblemType, detail: str
) -> None:
    """A problem answered before the app sees the request (nothing was done)."""
    body = msgspec.json.encode(
        {
            "type": kind.uri,
            "title": kind.title,
            "status": kind.status,
            "detail": detail,
            "instance": occurrence(request_id),
        }
    )
    metrics.PROBLEMS.labels(kind.slug).inc()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode("ascii")),
        *SECURITY_HEADERS,
    ]
    if kind.retry_after_s is not None:
        headers.append((b"retry-after", str(kind.retry_after_s).encode()))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": kind.status,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
