"""Who may call what. Every route declares the access it needs (`opt=requires(...)`): public,
a device key (checked by the ingest use case), or an operator token of at least a role; one
guard, `authorize`, enforces the roles, and `check_routes` refuses an app with a route that
declares nothing or that needs a token without going through the guard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.exceptions import ImproperlyConfiguredException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

from api.errors import RoleRequired
from domain.roles import Actor, Role, allows
from service.infra.errors import UnknownOperator
from service.infra.settings import Settings
from service.operators import OperatorGate

Access = Literal["public", "device", "viewer", "operator", "admin"]
ACCESS = "access"  # the `opt` key a route declares its access under
TOKEN_IN_DEVELOPMENT = "token_in_development"  # noqa: S105 - an opt key, not a secret
# The token role each access needs; public routes need none, the ingest route a device key.
ROLE_OF: dict[Access, Role | None] = {
    "public": None,
    "device": None,
    "viewer": "viewer",
    "operator": "operator",
    "admin": "admin",
}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="emissions"'}


def requires(access: Access, *, token_in_development: bool = False) -> dict[str, Any]:
    """A route's `opt`: who may call it. `viewer` routes (the reads) are open in development
    unless token_in_development; `operator` and `admin` routes always need a token."""
    return {ACCESS: access, TOKEN_IN_DEVELOPMENT: token_in_development}


def declared_access(handler: BaseRouteHandler) -> Access:
    """The access a route handler declared; LookupError when it declared none."""
    if set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
        return "public"  # Litestar's own OPTIONS answer: the Allow header, nothing else
    access = handler.opt.get(ACCESS)
    for known in ROLE_OF:
        if access == known:
            return known
    raise LookupError(f"{handler} declares no access: opt=requires('public' | 'device' | role)")


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The caller's address (behind a trusted proxy: the one it forwarded)."""
    client = connection.scope.get("client")
    return str(client[0]) if client else ""


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """Guard: the operator token's role must reach the route's; who it names goes to the
    audit (`caller`). 401 without a valid token, 403 naming the role when it falls short."""
    role = ROLE_OF[declared_access(route_handler)]
    if role is None:
        return
    settings: Settings = connection.app.state.settings
    if (
        role == "viewer"
        and settings.environment != "production"
        and not route_handler.opt.get(TOKEN_IN_DEVELOPMENT)
    ):
        return  # reads stay open in development
    gate: OperatorGate = connection.app.state.operators
    try:
        actor = await gate.identify(bearer_token(connection), client_address(connection))
    except UnknownOperator as exc:
        detail = f"a token with the {role} role or above is required"
        raise NotAuthorizedException(detail, headers=CHALLENGE) from exc
    if not allows(actor.role, role):
        raise RoleRequired(role, actor)
    connection.scope["state"]["actor"] = actor


def caller(request: Request[Any, Any, Any]) -> Actor:
    """Who the guard let through (name and role): the audit's actor."""
    actor: Actor = request.scope["state"]["actor"]
    return actor


def route_handlers(app: Litestar) -> Iterator[tuple[str, BaseRouteHandler]]:
    """(path, handler) of every route of the app, Litestar's own ones included."""
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        for handler in handlers:
            yield route.path, handler


def check_routes(app: Litestar) -> None:
    """Refuse (at startup) a route that declares no access, or that needs a token and is not
    behind `authorize`."""
    problems = []
    for path, handler in route_handlers(app):
        try:
            access = declared_access(handler)
        except LookupError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if ROLE_OF[access] is not None and authorize not in handler.resolve_guards():
            problems.append(f"{path}: {handler} needs a token but is not guarded by authorize")
    if problems:
        raise ImproperlyConfiguredException("; ".join(problems))
