"""HEAD for every GET route (RFC 9110 section 9.3.2), and `Allow` answers that list it."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


class HeadAsGet:
    """HEAD is served by the GET handler with the body dropped, so its status and headers
    (Content-Length, ETag, Content-Type...) are exactly the GET's; and an `Allow` header
    (Litestar's OPTIONS answer, a 405) lists every method of the route, HEAD with GET.

    Litestar's own OPTIONS answer lists only the methods of the first handler registered at a
    path (its handler keeps the first route object, e.g. "OPTIONS, POST" for /v1/sites), so the
    methods come from the app's routes, by the path template the router matched.

    An ASGI wrapper rather than `http_method=[GET, HEAD]` on each route: Litestar refuses a
    HEAD handler that returns a body, routing happens before any Litestar middleware, and one
    place cannot miss a route.
    """

    def __init__(self, app: Litestar) -> None:
        self.app: ASGIApp = app
        self.methods: dict[str, set[str]] = {}
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                self.methods.setdefault(route.path, set()).update(route.methods)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the wrapped Litestar app's state, schema...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        inner: HTTPScope = {**scope, "method": "GET"} if head else scope

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.start":
                methods = self.methods.get(inner.get("path_template", ""))
                headers = [_allow(h, methods) for h in message["headers"]]
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(inner, receive, send_head)


def _allow(header: tuple[bytes, bytes], route_methods: set[str] | None) -> tuple[bytes, bytes]:
    name, value = header
    if name.lower() != b"allow":
        return header
    methods = {m.strip().decode("latin-1") for m in value.split(b",") if m.strip()}
    methods |= route_methods or set()
    if "GET" in methods:
        methods.add("HEAD")
    return name, ", ".join(sorted(methods)).encode("latin-1")
