"""Make the generated OpenAPI tell the truth about errors (every one is problem+json) and about
access (each operation states the role it needs, from the route's own declaration)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    SecurityScheme,
)

from api.auth import ROLE_OF, TOKEN_IN_DEVELOPMENT, Access, declared_access, route_handlers
from api.problems import PROBLEM_JSON
from api.schemas import Problem, inline_schema

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SECURITY_SCHEMES = Components(
    security_schemes={
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            description="An operator token (ADMIN_TOKENS, or `emissions tokens create`) with a"
            " role: viewer < operator < admin; each may do what the roles below it may.",
        ),
        "deviceKey": SecurityScheme(
            type="http",
            scheme="bearer",
            description="A device key (emk_...), bound to the sites it may post to.",
        ),
    }
)
_ABOVE = {"viewer": "viewer, operator or admin", "operator": "operator or admin", "admin": "admin"}


@dataclass
class _OperationWithRole(Operation):
    """An Operation with the `x-required-role` extension."""

    required_role: str | None = field(default=None, metadata={"alias": "x-required-role"})


def _access_text(access: Access, token_in_development: bool) -> str:
    role = ROLE_OF[access]
    if role is None:
        return (
            "Access: a device key bound to the site."
            if access == "device"
            else "Access: public, no token."
        )
    text = f"Access: a token with the role {_ABOVE[role]}"
    if role == "viewer" and not token_in_development:
        return text + " (production); open without a token in development."
    return text + "."


def document_access(schema: OpenAPI, app: Litestar) -> None:
    """Per operation: `x-required-role` (public, device, viewer, operator or admin), a sentence
    in the description, the security requirement, and the 401 / 403 it can answer."""
    declared: dict[str, tuple[Access, bool]] = {}
    for _, handler in route_handlers(app):
        if isinstance(getattr(handler, "operation_id", None), str):
            access = declared_access(handler)
            declared[handler.operation_id] = (access, bool(handler.opt.get(TOKEN_IN_DEVELOPMENT)))  # type: ignore[attr-defined]
    for item in (schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            access, token_in_development = declared[operation.operation_id or ""]
            role = ROLE_OF[access]
            text = _access_text(access, token_in_development)
            described = f"{operation.description}\n\n{text}" if operation.description else text
            responses = operation.responses or {}
            if role is not None:
                responses.setdefault("401", OpenAPIResponse(description="No valid token"))
            if role in ("operator", "admin"):
                below = "viewer" if role == "operator" else "viewer or operator"
                responses.setdefault(
                    "403",
                    OpenAPIResponse(
                        description=f"The token's role is {below}: /problems/forbidden-role"
                    ),
                )
            security: Any = (
                [{"bearer": []}]
                if role is not None
                else ([{"deviceKey": []}] if access == "device" else None)
            )
            copied = {f.name: getattr(operation, f.name) for f in fields(Operation)}
            copied.update(description=described, responses=responses, security=security)
            setattr(item, method, _OperationWithRole(**copied, required_role=access))


def document_problems(schema: OpenAPI) -> None:
    """Every documented 4xx/5xx answers application/problem+json, and every operation gets a
    `default` response saying so for the statuses it does not list."""
    problem: Any = inline_schema(Problem)
    media = {PROBLEM_JSON: OpenAPIMediaType(schema=problem)}
    for item in (schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for code, response in responses.items():
                if code[:1] in "45" and isinstance(response, OpenAPIResponse):
                    response.content = dict(media)
            responses.setdefault(
                "default", OpenAPIResponse(description="An RFC 9457 problem", content=dict(media))
            )
            operation.responses = responses
