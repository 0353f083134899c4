"""Make the generated OpenAPI document the contract: who may call each operation (security
schemes and `x-required-role`), one `Problem` component for every error, the bounds of ids,
and the headers the handlers set themselves (Location on 201, Allow)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)

from api.auth import ROLE_OF, TOKEN_IN_DEVELOPMENT, Access, declared_access, route_handlers
from api.problems import ALL_TYPES, PROBLEM_JSON
from service.infra.db import MAX_ID

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
OPERATOR = "operatorToken"
DEVICE = "deviceKey"
SECURITY_SCHEMES = Components(
    security_schemes={
        OPERATOR: SecurityScheme(
            type="http",
            scheme="bearer",
            description="An operator token (ADMIN_TOKENS, or `emissions tokens create`) with a"
            " role: viewer < operator < admin; each may do what the roles below it may.",
        ),
        DEVICE: SecurityScheme(
            type="http",
            scheme="bearer",
            description="A device key (emk_...), bound to the sites it may post to.",
        ),
    }
)
_ABOVE = {"viewer": "viewer, operator or admin", "operator": "operator or admin", "admin": "admin"}
PROBLEM_REF = Reference(ref="#/components/schemas/Problem")
# Every `errors` item points into the request: a body member (JSON pointer) or a parameter.
_ERROR_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "pointer": {
            "type": "string",
            "description": "JSON pointer (RFC 6901) into the request body; '' is the whole body",
        },
        "in": {"type": "string", "enum": ["query", "path", "header"]},
        "name": {"type": "string", "description": "The parameter's public name"},
        "detail": {"type": "string"},
    },
}


def problem_schema() -> dict[str, Any]:
    """RFC 9457 problem details, with every `type` the API answers enumerated."""
    return {
        "type": "object",
        "description": "RFC 9457 problem details; `type` resolves to a page documenting it.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "enum": sorted(p.uri for p in ALL_TYPES.values())},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {
                "type": "string",
                "description": "This occurrence: urn:request:<the X-Request-Id of the request>",
            },
            "errors": {"type": "array", "items": _ERROR_ITEM},
            "required_role": {"type": "string", "description": "forbidden-role: the role needed"},
            "role": {"type": "string", "description": "forbidden-role: the token's role"},
        },
    }


@dataclass
class _OperationWithRole(Operation):
    """An Operation with the `x-required-role` extension."""

    required_role: str | None = field(default=None, metadata={"alias": "x-required-role"})


def _operations(schema: OpenAPI) -> list[tuple[Any, str, Operation]]:
    found = []
    for item in (schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is not None:
                found.append((item, method, operation))
    return found


def _access_text(access: Access, open_in_development: bool) -> str:
    role = ROLE_OF[access]
    if role is None:
        return (
            "Access: a device key bound to the site."
            if access == "device"
            else "Access: public, no token."
        )
    text = f"Access: a token with the role {_ABOVE[role]}"
    if open_in_development:
        return text + " (production); open without a token in development."
    return text + "."


def document_access(schema: OpenAPI, app: Litestar, *, development: bool) -> None:
    """Per operation: `x-required-role` (public, device, viewer, operator or admin), a sentence
    in the description, the security requirement (`[]` for public ones; optional for reads
    that development serves without a token), and the 401 / 403 it can answer."""
    declared: dict[str, tuple[Access, bool]] = {}
    for _, handler in route_handlers(app):
        if isinstance(getattr(handler, "operation_id", None), str):
            access = declared_access(handler)
            declared[handler.operation_id] = (access, bool(handler.opt.get(TOKEN_IN_DEVELOPMENT)))  # type: ignore[attr-defined]
    for item, method, operation in _operations(schema):
        access, token_in_development = declared[operation.operation_id or ""]
        role = ROLE_OF[access]
        open_reads = role == "viewer" and not token_in_development
        text = _access_text(access, open_reads)
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
        security: list[dict[str, list[str]]] = []
        if access == "device":
            security = [{DEVICE: []}]
        elif role is not None:
            security = [{OPERATOR: []}, *([{}] if open_reads and development else [])]
        copied = {f.name: getattr(operation, f.name) for f in fields(Operation)}
        copied.update(description=described, responses=responses, security=security)
        setattr(item, method, _OperationWithRole(**copied, required_role=access))


def document_problems(schema: OpenAPI) -> None:
    """Every documented 4xx/5xx answers application/problem+json with the one `Problem`
    component, and every operation gets a `default` response saying so."""
    components = schema.components
    components.schemas = {**(components.schemas or {}), "Problem": problem_schema()}  # type: ignore[dict-item]
    components.schemas.pop("FieldProblem", None)
    for _, _, operation in _operations(schema):
        responses = operation.responses or {}
        for code, response in responses.items():
            if code[:1] in "45" and isinstance(response, OpenAPIResponse):
                response.content = {PROBLEM_JSON: OpenAPIMediaType(schema=PROBLEM_REF)}
        responses.setdefault(
            "default",
            OpenAPIResponse(
                description="An RFC 9457 problem",
                content={PROBLEM_JSON: OpenAPIMediaType(schema=PROBLEM_REF)},
            ),
        )
        operation.responses = responses


def document_bounds(schema: OpenAPI) -> None:
    """Ids in paths are positive int64s up to MAX_ID; a 201 says where the new resource is."""
    for _, _, operation in _operations(schema):
        for parameter in operation.parameters or ():
            if (
                getattr(parameter, "param_in", None) == "path"
                and isinstance(parameter.schema, Schema)  # type: ignore[union-attr]
                and parameter.schema.type == OpenAPIType.INTEGER  # type: ignore[union-attr]
            ):
                parameter.schema.format = "int64"  # type: ignore[union-attr, assignment]
                parameter.schema.minimum = 1  # type: ignore[union-attr]
                parameter.schema.maximum = MAX_ID  # type: ignore[union-attr]
        created = (operation.responses or {}).get("201")
        if isinstance(created, OpenAPIResponse):
            created.headers = {
                **(created.headers or {}),
                "Location": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.URI_REFERENCE),
                    description="The new resource",
                    required=True,
                ),
            }


def finish(schema: OpenAPI, app: Litestar, *, development: bool) -> None:
    document_access(schema, app, development=development)
    document_problems(schema)
    document_bounds(schema)
    name_bodies(schema)


def name_bodies(schema: OpenAPI) -> None:
    """Request bodies as named components (their msgspec class name), not inline copies."""
    named = schema.components.schemas if schema.components.schemas is not None else {}
    for _, _, operation in _operations(schema):
        body = operation.request_body
        for media in (getattr(body, "content", None) or {}).values():
            inline = media.schema
            if isinstance(inline, dict) and isinstance(inline.get("title"), str):
                named[inline["title"]] = inline  # type: ignore[assignment]
                media.schema = Reference(ref=f"#/components/schemas/{inline['title']}")
    schema.components.schemas = named
