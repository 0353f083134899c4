"""Operator authentication: a named bearer token, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from service.settings import Settings


def operator_name(token: str, tokens: dict[str, str]) -> str | None:
    """The name of the operator whose token this is; every token is compared (no early exit)."""
    found = None
    for known, name in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = name
    return found


def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard: `Authorization: Bearer <admin token>`; stores the operator name for the audit."""
    settings: Settings = connection.app.state.settings
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    name = None
    if scheme.lower() == "bearer":
        name = operator_name(token.strip(), settings.admin_token_map)
    if name is None:
        raise NotAuthorizedException(
            "an admin token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="ops"'},
        )
    connection.scope["state"]["operator"] = name
