"""Who is calling: operators (named admin tokens) for ops writes, devices (keys) for ingest."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

from domain.roles import Actor
from service.infra.errors import UnknownOperator
from service.infra.settings import Settings
from service.operators import OperatorGate

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="emissions"'}


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address (behind a trusted proxy: the one it forwarded)."""
    client = connection.scope.get("client")
    return str(client[0]) if client else ""


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def require_admin(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard: a named admin token (settings or CLI-created); its name goes to the audit."""
    gate: OperatorGate = connection.app.state.operators
    try:
        actor = await gate.identify(bearer_token(connection), client_address(connection))
    except UnknownOperator as exc:
        raise NotAuthorizedException("an admin token is required", headers=CHALLENGE) from exc
    connection.scope["state"]["actor"] = actor


async def require_reader(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard for read endpoints: open in development, an admin token in production."""
    settings: Settings = connection.app.state.settings
    if settings.environment == "production":
        await require_admin(connection, route_handler)


def caller(request: Request[Any, Any, Any]) -> Actor:
    """Who the guard let through (name and role): the audit's actor."""
    actor: Actor = request.scope["state"]["actor"]
    return actor
