"""The one mapping from exceptions to RFC 9457 problem responses."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from typing import Any, Literal

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import ParameterKwarg

from api import errors as edge
from domain.errors import FieldError, InvalidBatch
from domain.idempotency import InvalidIdempotencyKey, MissingIdempotencyKey
from service.alerts import AlertNotFound
from service.infra import errors as svc
from service.infra import metrics
from service.outbox import OutboxEventNotFound
from service.subscriptions import SubscriptionDisabled, SubscriptionNotFound

PROBLEM_JSON = "application/problem+json"
# Framework error headers worth keeping on the problem response.
_PASS_HEADERS = {"allow", "www-authenticate", "retry-after"}
log = structlog.get_logger("api")


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    retry_after_s: int | None = None

    @property
    def uri(self) -> str:
        # Relative URI reference: resolves against the API, which documents it at that path.
        return f"/problems/{self.slug}"


# One status and one type for every request that is well-formed HTTP but breaks a documented
# rule, in the body or in a query, path or header parameter: 422, as body errors always were
# (a client has one handler, and `errors` points at what to fix). 400 stays for what cannot be
# read at all (malformed JSON) and for the Idempotency-Key header, whose draft prescribes 400.
VALIDATION = ProblemType("validation-error", 422, "Request failed validation")
INTERNAL = ProblemType("internal-error", 500, "Internal server error")
OVERLOADED = ProblemType("overloaded", 503, "Server overloaded", 1)
HOST_NOT_ALLOWED = ProblemType("host-not-allowed", 400, "Host not allowed")
HEADERS_TOO_LARGE = ProblemType("headers-too-large", 431, "Request headers too large")
HEADER_TIMEOUT = ProblemType("header-timeout", 408, "Request headers timed out")

TABLE: dict[type[Exception], ProblemType] = {
    MissingIdempotencyKey: ProblemType("idempotency-key-missing", 400, "Missing key"),
    InvalidIdempotencyKey: ProblemType("idempotency-key-invalid", 400, "Invalid key"),
    edge.MalformedJson: ProblemType("malformed-json", 400, "Malformed JSON"),
    edge.BodyTimeout: ProblemType("body-timeout", 408, "Request body timed out"),
    # Nobody reads this answer; the status is for the logs and metrics: a client's fault
    # (a device that lost its link mid-upload), not the server's 500.
    edge.ClientDisconnected: ProblemType("client-disconnected", 400, "Client disconnected"),
    edge.UnsupportedMediaType: ProblemType("unsupported-media-type", 415, "Unsupported type"),
    edge.InvalidBody: VALIDATION,
    edge.InvalidParameters: VALIDATION,
    edge.RoleRequired: ProblemType("forbidden-role", 403, "Role not allowed"),
    InvalidBatch: VALIDATION,
    svc.InvalidInput: VALIDATION,
    svc.SiteNotFound: ProblemType("site-not-found", 404, "Site not found"),
    svc.DuplicateSiteName: ProblemType("site-name-taken", 409, "Site name taken"),
    svc.KeyInFlight: ProblemType("idempotency-key-in-flight", 409, "Request in flight", 1),
    svc.KeyReused: ProblemType("idempotency-key-reused", 422, "Key reused with another body"),
    svc.DatabaseUnavailable: ProblemType("database-unavailable", 503, "Database unavailable", 5),
    svc.RequestTimeout: ProblemType("request-timeout", 503, "Request timed out", 1),
    svc.MissingDeviceKey: ProblemType("device-key-missing", 401, "Device key required"),
    svc.InvalidDeviceKey: ProblemType("device-key-invalid", 401, "Invalid device key"),
    svc.SiteForbidden: ProblemType("site-forbidden", 403, "Site not allowed for this key"),
    svc.DeviceMismatch: ProblemType("device-mismatch", 403, "Device does not match key"),
    svc.DeviceKeyNotFound: ProblemType("device-key-not-found", 404, "Device key not found"),
    svc.RateLimited: ProblemType("rate-limited", 429, "Too many requests"),
    svc.DeviceBusy: ProblemType("device-busy", 429, "Device has too many requests in flight", 1),
    AlertNotFound: ProblemType("alert-not-found", 404, "Alert not found"),
    SubscriptionNotFound: ProblemType("subscription-not-found", 404, "Subscription not found"),
    OutboxEventNotFound: ProblemType("outbox-event-not-found", 404, "Outbox event not found"),
    SubscriptionDisabled: ProblemType("subscription-disabled", 409, "Subscription disabled"),
}

# Litestar's own errors (routing, size limit, parameters), by status code.
BY_STATUS: dict[int, ProblemType] = {
    400: ProblemType("bad-request", 400, "Bad request"),
    401: ProblemType("unauthorized", 401, "Unauthorized"),
    403: ProblemType("forbidden", 403, "Forbidden"),
    404: ProblemType("not-found", 404, "Not found"),
    405: ProblemType("method-not-allowed", 405, "Method not allowed"),
    413: ProblemType("body-too-large", 413, "Request body too large"),
    415: ProblemType("unsupported-media-type", 415, "Unsupported media type"),
    429: ProblemType("too-many-requests", 429, "Too many requests"),
    503: ProblemType("service-unavailable", 503, "Service unavailable"),
}

ALL_TYPES: dict[str, ProblemType] = {
    p.slug: p
    for p in [
        *TABLE.values(),
        *BY_STATUS.values(),
        VALIDATION,
        INTERNAL,
        OVERLOADED,
        HOST_NOT_ALLOWED,
        HEADERS_TOO_LARGE,
        HEADER_TIMEOUT,
    ]
}


def _lookup(exc: Exception) -> ProblemType | None:
    for cls in type(exc).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return None


def _headers(exc: Exception) -> dict[str, str]:
    if isinstance(exc, svc.RateLimited):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    if isinstance(exc, svc.MissingDeviceKey | svc.InvalidDeviceKey):
        return {"WWW-Authenticate": 'Bearer realm="emissions"'}
    return {}


def _members(exc: Exception) -> dict[str, Any]:
    """Extension members of the problem body (RFC 9457 §3.2) for the exceptions that have them."""
    if isinstance(exc, edge.RoleRequired):
        return {"required_role": exc.required_role, "role": exc.role}
    return {}


ErrorItem = dict[str, str]


def _body_errors(errors: list[FieldError]) -> list[ErrorItem]:
    return [{"pointer": e.pointer, "detail": e.detail} for e in errors]


def _parameter_items(errors: list[edge.ParameterError]) -> list[ErrorItem]:
    return [{"in": e.location, "name": e.name, "detail": e.detail} for e in errors]


def _field_errors(exc: Exception) -> list[ErrorItem] | None:
    if isinstance(exc, edge.InvalidBody | InvalidBatch | svc.InvalidInput):
        return _body_errors(exc.errors)
    if isinstance(exc, edge.InvalidParameters):
        return _parameter_items(exc.errors)
    if isinstance(exc, MissingIdempotencyKey | InvalidIdempotencyKey):
        return [{"in": "header", "name": "Idempotency-Key", "detail": exc.detail}]
    return None


def problem_response(
    kind: ProblemType,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[ErrorItem] | None = None,
    headers: dict[str, str] | None = None,
    members: dict[str, Any] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        **(members or {}),
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    headers = dict(headers or {})
    if kind.retry_after_s is not None:
        headers.setdefault("Retry-After", str(kind.retry_after_s))
    structlog.contextvars.bind_contextvars(problem=kind.slug)
    metrics.PROBLEMS.labels(kind.slug).inc()
    return Response(
        content=msgspec.json.encode(body),
        status_code=kind.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar exception handler for every exception: one mapping, one body shape."""
    instance = occurrence(request.scope.get("state", {}).get("request_id", ""))
    kind = _lookup(exc)
    if kind is not None:
        detail = getattr(exc, "detail", None) or str(exc)
        return problem_response(
            kind,
            detail,
            instance=instance,
            errors=_field_errors(exc),
            headers=_headers(exc),
            members=_members(exc),
        )
    if isinstance(exc, ValidationException):
        errors = _parameter_errors(request, exc)
        detail = "; ".join(f"{e.name}: {e.detail}" for e in errors) or str(exc.detail)
        return problem_response(
            VALIDATION, detail, instance=instance, errors=_parameter_items(errors)
        )
    if isinstance(exc, HTTPException) and exc.status_code != HTTPStatus.INTERNAL_SERVER_ERROR:
        status = exc.status_code
        kind = BY_STATUS.get(status) or ProblemType(
            f"http-{status}", status, HTTPStatus(status).phrase
        )
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() in _PASS_HEADERS}
        # The static files' 404 names the file it looked for (a directory: its full path).
        detail = "Nothing here: check the path." if status == HTTPStatus.NOT_FOUND else exc.detail
        return problem_response(kind, detail, instance=instance, headers=headers)
    log.exception("unhandled_error", exc_info=exc)
    return problem_response(
        INTERNAL, "The server failed to handle this request.", instance=instance
    )


def problem_page(kind: ProblemType) -> str:
    """A problem type explained for a person (what a browser gets at the `type` URI)."""
    title, slug = escape(kind.title), escape(kind.slug)
    retry = (
        f"<p>Retry after at least {kind.retry_after_s} s (the Retry-After header says).</p>"
        if kind.retry_after_s is not None
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head><body><main><h1>{title}</h1>"
        f"<p>Problem type <code>/problems/{slug}</code>, HTTP status {kind.status}.</p>"
        f"{retry}<p>The response body is application/problem+json (RFC 9457): <code>detail"
        "</code> says what happened, <code>errors</code> (when present) points at each bad "
        "body member (<code>pointer</code>) or parameter (<code>in</code>, <code>name</code>),"
        " and <code>instance</code> is <code>urn:request:</code> followed by the request id "
        "(the X-Request-Id header): quote it when you report the problem.</p>"
        '<p><a href="/problems">All problem types</a> · <a href="/schema">API reference</a>'
        "</p></main></body></html>"
    )


def problem_types() -> list[dict[str, Any]]:
    """Every problem type the API answers with, for the /problems index."""
    return [{"type": p.uri, "title": p.title, "status": p.status} for p in ALL_TYPES.values()]


_MISSING = re.compile(r"Missing required (\w+) parameter '([^']*)'")


def occurrence(request_id: str) -> str:
    """A problem's `instance`: this occurrence, the request id the response also carries."""
    return f"urn:request:{request_id}"


def _parameter_errors(
    request: Request[Any, Any, Any], exc: ValidationException
) -> list[edge.ParameterError]:
    """Litestar's parameter errors, under the names a client sends: its `key` is the handler's
    argument (`start`), the public name (`from`) is the alias it was declared with."""
    missing = _MISSING.match(str(exc.detail))
    if missing:
        location = _location(missing.group(1))
        return [edge.ParameterError(location, missing.group(2), "is required")]
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    fields = signature.parameters if signature is not None else {}
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict) or "key" not in item:
            continue
        key = str(item["key"])
        source = getattr(item.get("source"), "value", item.get("source")) or "query"
        kwarg = getattr(fields.get(key), "kwarg_definition", None)
        name = key
        if isinstance(kwarg, ParameterKwarg):
            name = kwarg.name or kwarg.query or kwarg.header or key
        errors.append(edge.ParameterError(_location(str(source)), name, str(item["message"])))
    return errors


def _location(source: str) -> Literal["query", "path", "header"]:
    return "path" if source == "path" else "header" if source == "header" else "query"
