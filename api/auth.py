"""Who is calling: operators (named admin tokens) for ops writes, devices (keys) for ingest."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from service import operators
from service.infra import db
from service.infra.settings import Settings

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="emissions"'}


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard: a named admin token (settings or CLI-created); its name goes to the audit."""
    settings: Settings = connection.app.state.settings
    token = bearer_token(connection)
    name = None
    if token is not None:
        async with db.connection(connection.app.state.pool) as conn:
            name = await operators.operator_for_token(conn, token, settings.admin_token_map)
    if name is None:
        raise NotAuthorizedException("an admin token is required", headers=CHALLENGE)
    connection.scope["state"]["operator"] = name


async def require_reader(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard for read endpoints: open in development, an admin token in production."""
    settings: Settings = connection.app.state.settings
    if settings.environment == "production":
        await require_admin(connection, route_handler)
