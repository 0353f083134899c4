"""Conditional GET for polled reads: a weak ETag over the body, and 304 when it still matches."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec

_encode = msgspec.json.Encoder().encode
NOT_MODIFIED = {
    304: ResponseSpec(
        None,
        description="Not Modified: the If-None-Match ETag still matches (the body is unchanged, "
        "but for clock-derived fields such as freshness_s: add the time since the 200)",
    )
}


def tag(stable: Any) -> str:
    """W/ because the body also carries fields that move with the clock (freshness_s), which
    the tag leaves out: equal tags mean the same data, not the same bytes."""
    return f'W/"{hashlib.blake2b(_encode(stable), digest_size=12).hexdigest()}"'


def conditional(request: Request[Any, Any, Any], body: Any, etag: str) -> Response[Any]:
    """The body with its ETag, or an empty 304 when the client already has that ETag."""
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    sent = request.headers.get("if-none-match", "")
    if etag in (t.strip() for t in sent.split(",")) or sent.strip() == "*":
        return Response(b"", status_code=304, headers=headers)
    return Response(body, headers=headers)
